/**
 * The few `Buffer` calls that core and the Bitcoin decoders make (hex and
 * base64 in and out), for the browser. The build injects this module where
 * those packages name the Node global, so core stays unchanged and the
 * bundle pulls in no Node module (esbuild platform 'browser'). Anything else
 * asked of it throws, so a new use is found by the browser tests, not
 * guessed at.
 */
import { base64 } from '@scure/base';

const HEX = /^(?:[0-9a-fA-F]{2})*$/;

class BrowserBuffer extends Uint8Array {
  override toString(encoding?: string): string {
    if (encoding === 'hex') {
      let s = '';
      for (const b of this) s += b.toString(16).padStart(2, '0');
      return s;
    }
    if (encoding === 'base64') return base64.encode(this);
    if (encoding === undefined || encoding === 'utf8' || encoding === 'utf-8') {
      return new TextDecoder().decode(this);
    }
    throw new Error(`Buffer#toString(${encoding}) is not available in the console`);
  }
}

function fromString(text: string, encoding: string | undefined): BrowserBuffer {
  if (encoding === 'hex') {
    // Node stops at the first non-hex pair; core checks its hex before it gets here.
    const clean = HEX.test(text) ? text : '';
    const out = new BrowserBuffer(clean.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(clean.slice(2 * i, 2 * i + 2), 16);
    return out;
  }
  if (encoding === 'base64') return new BrowserBuffer(base64.decode(text));
  if (encoding === undefined || encoding === 'utf8' || encoding === 'utf-8') {
    return new BrowserBuffer(new TextEncoder().encode(text));
  }
  throw new Error(`Buffer.from(string, ${encoding}) is not available in the console`);
}

export const Buffer = {
  from(value: unknown, a?: unknown, b?: unknown): BrowserBuffer {
    if (typeof value === 'string') return fromString(value, a as string | undefined);
    if (value instanceof ArrayBuffer) {
      return new BrowserBuffer(value, (a as number | undefined) ?? 0, b as number | undefined);
    }
    if (value instanceof Uint8Array) return new BrowserBuffer(value);
    if (Array.isArray(value)) return new BrowserBuffer(value as number[]);
    throw new Error('Buffer.from: unsupported value in the console');
  },
  concat(list: readonly Uint8Array[]): BrowserBuffer {
    const out = new BrowserBuffer(list.reduce((n, x) => n + x.length, 0));
    let at = 0;
    for (const x of list) {
      out.set(x, at);
      at += x.length;
    }
    return out;
  },
};
