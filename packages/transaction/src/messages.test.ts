import { describe, expect, it } from 'vitest';
import { reasonPhrase } from './messages.js';

describe('reasonPhrase', () => {
  it.each([
    [100, 'Trying'],
    [404, 'Not Found'],
    [482, 'Loop Detected'],
    [483, 'Too Many Hops'],
    [487, 'Request Terminated'],
    [505, 'Version Not Supported'],
  ])('%i is %s (RFC 3261 §21)', (status, phrase) => {
    expect(reasonPhrase(status)).toBe(phrase);
  });

  it('says Unknown for a status without a standard phrase', () => {
    expect(reasonPhrase(499)).toBe('Unknown');
  });
});
