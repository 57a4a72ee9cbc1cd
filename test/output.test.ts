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

  it('copies stored values, or queues a copy of a large one: a later change to their memory does not reach the reply', () => {
    for (const length of [10, 100_000]) {
      const out = new OutputBuffer();
      const memory = Buffer.alloc(length, 0x61);
      const item = {
        valueLength: length,
        copyValueTo: (target: Buffer, offset: number) => offset + memory.copy(target, offset),
        copyValue: () => Buffer.from(memory),
      };
      out.ascii(`VALUE k 0 ${length}\r\n`);
      out.storedValue(item);
      out.ascii('\r\nEND\r\n');
      memory.fill(0x62); // the item's chunk reused before the socket wrote the reply
      assert.equal(text(out.take()), `VALUE k 0 ${length}\r\n${'a'.repeat(length)}\r\nEND\r\n`);
    }
  });

  it('writes numbers as ASCII digits', () => {
    const out = new OutputBuffer();
    for (const n of [0, 7, 10, 4294967295, -1, -61, 2 ** 53 - 1, 1.5]) {
      out.decimal(n);
      out.byte(0x20);
    }
    out.decimal64(18446744073709551615n);
    out.byte(0x20);
    out.decimal64(42n);
    assert.equal(text(out.take()), '0 7 10 4294967295 -1 -61 9007199254740991 1.5 18446744073709551615 42');
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
