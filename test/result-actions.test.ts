import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  decodeResultAction,
  encodeResultAction,
  RESULT_ACTION_DATA,
  resultActions,
} from '../src/delivery/result-actions.ts';

describe('result actions (callback_data of the buttons under a result)', () => {
  it('encodes res:<r|e|o>:<id> within Telegram 64 bytes and decodes it back', () => {
    const id = randomUUID();
    expect(encodeResultAction('regenerate', id)).toBe(`res:r:${id}`);
    expect(encodeResultAction('edit', id)).toBe(`res:e:${id}`);
    expect(encodeResultAction('original', id)).toBe(`res:o:${id}`);
    for (const action of resultActions) {
      const data = encodeResultAction(action, id);
      expect(Buffer.byteLength(data)).toBeLessThanOrEqual(64);
      expect(RESULT_ACTION_DATA.test(data)).toBe(true);
      expect(decodeResultAction(data)).toEqual({ action, generationId: id });
    }
    expect(encodeResultAction('edit', id.toUpperCase())).toBe(`res:e:${id}`);
  });

  it('answers null for anything else, and refuses to encode what is not a generation id', () => {
    const id = randomUUID();
    for (const data of [
      undefined,
      '',
      'res',
      `res:x:${id}`,
      `res:r:${id}:extra`,
      'res:r:not-a-uuid',
      `menu:r:${id}`,
      `res:r:${id.toUpperCase()}`,
    ]) {
      expect(decodeResultAction(data), String(data)).toBeNull();
    }
    expect(() => encodeResultAction('regenerate', 'nope')).toThrow();
  });
});
