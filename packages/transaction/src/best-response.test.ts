import { describe, expect, it } from 'vitest';
import { selectBest, type Candidate } from './best-response.js';

const c = (status: number, local = false): Candidate<string> => ({
  status,
  message: `r${status}`,
  local,
});

describe('best response (RFC 3261 §16.7 step 6)', () => {
  it('MUST choose from the 6xx class if any exist', () => {
    expect(selectBest([c(302), c(404), c(603), c(486)])?.status).toBe(603);
  });

  it('SHOULD choose from the lowest class otherwise', () => {
    expect(selectBest([c(503), c(486), c(302)])?.status).toBe(302);
    expect(selectBest([c(503), c(486)])?.status).toBe(486);
  });

  it('SHOULD prefer 401, 407, 415, 420 and 484 within 4xx', () => {
    for (const hint of [401, 407, 415, 420, 484]) {
      expect(selectBest([c(404), c(486), c(hint)])?.status).toBe(hint);
    }
  });

  it('keeps the earliest within a class', () => {
    expect(selectBest([c(404), c(486)])?.message).toBe('r404');
  });

  it('returns undefined for an empty context (the caller sends 408)', () => {
    expect(selectBest([])).toBeUndefined();
  });
});
