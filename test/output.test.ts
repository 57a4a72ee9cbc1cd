/**
 * The reply queue that keeps replies in request order when one of them is not
 * ready yet (a durable write waiting for its flush). A unit test: no socket can
 * produce a late reply until the disk tier exists.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OutputBuffer } from '../src/server/output.js';

const text = (pieces: Buffer[]): string => Buffer.concat(pieces).toString('latin1');

describe('OutputBuffer', () => {
  it('hands out small replies as one piece', () => {
    const out = new OutputBuffer();
    out.ascii('STORED\r\n');
    out.bytes(Buffer.from('END\r\n'));
    const pieces = out.take();
    assert.equal(pieces.length, 1);
    assert.equal(text(pieces), 'STORED\r\nEND\r\n');
    assert.ok(out.isEmpty);
  });

  it('queues large values by reference between copied pieces', () => {
    const out = new OutputBuffer();
    const value = Buffer.alloc(100_000, 0x61);
    out.ascii('VALUE k 0 100000\r\n');
    out.value(value);
    out.ascii('\r\nEND\r\n');
    const pieces = out.take();
    assert.equal(pieces.length, 3);
    assert.equal(pieces[1], value);
  });

  it('grows past its chunk size without losing bytes', () => {
    const out = new OutputBuffer();
    let expected = '';
    for (let i = 0; i < 20_000; i++) {
      const line = `STAT item_${i} ${i}\r\n`;
      out.ascii(line);
      expected += line;
    }
    assert.equal(text(out.take()), expected);
  });
});
