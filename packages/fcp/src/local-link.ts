/**
 * An FCP connection inside one process: a pair of connected duplex streams, for a client whose
 * server runs in the same process (the proxy's embedded fcpd). The bytes are the same FCP/1.0
 * text as over TCP, in the same order, with the same framing and SEQ checks; only the socket is
 * missing. A write on one end is delivered to the other end's `data` listeners at once, in the
 * same turn of the event loop, so a SET costs no trip through the kernel and no wait for the
 * next poll of the event loop.
 *
 * Ending or destroying one end closes the other, as a TCP connection would.
 */
import { Duplex } from 'node:stream';

class LinkEnd extends Duplex {
  peer: LinkEnd | undefined;

  constructor() {
    // Either end finished (end() or the peer's end) closes the whole link.
    super({ allowHalfOpen: false });
  }

  override _read(): void {
    // Data is pushed by the peer's writes.
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (e?: Error | null) => void): void {
    const peer = this.peer;
    if (peer === undefined || peer.destroyed) {
      done(new Error('FCP local link closed'));
      return;
    }
    peer.push(chunk);
    done();
  }

  override _final(done: (e?: Error | null) => void): void {
    this.peer?.push(null);
    done();
  }

  override _destroy(err: Error | null, done: (e?: Error | null) => void): void {
    const peer = this.peer;
    this.peer = undefined;
    if (peer !== undefined && !peer.destroyed) peer.destroy();
    done(err);
  }
}

/** Two connected ends: what one writes, the other reads. */
export function localLink(): [Duplex, Duplex] {
  const a = new LinkEnd();
  const b = new LinkEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
