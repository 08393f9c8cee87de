import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from './helpers/app.ts';

/** What Node's HTTP parser refuses never reaches a route: answered on the socket, as problem+json. */
let app: FastifyInstance;
let port: number;
beforeAll(async () => {
  app = await buildTestApp();
  await app.listen({ port: 0, host: '127.0.0.1' });
  port = (app.server.address() as AddressInfo).port;
});
afterAll(() => app.close());

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Writes `raw` to a fresh connection and reads until the server closes it (each closes it). */
function exchange(raw: string | Buffer): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString();
      const [head = '', body = ''] = text.split('\r\n\r\n');
      const [statusLine = '', ...headerLines] = head.split('\r\n');
      const headers = Object.fromEntries(
        headerLines.map((line) => {
          const colon = line.indexOf(':');
          return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
        }),
      );
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body });
    });
    // Not end(): a client that half-closes has its request aborted by Node's server.
    socket.write(raw);
  });
}

describe('malformed HTTP is answered with problem+json', () => {
  it.each([
    ['a request line that is not HTTP', 'GARBAGE\r\n\r\n', 400, 'bad_request'],
    ['an invalid method', 'G@T / HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'bad_request'],
    [
      'a non-numeric Content-Length',
      'POST /api/v1/users/sync HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
      400,
      'bad_request',
    ],
    [
      'both Content-Length and chunked',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      400,
      'bad_request',
    ],
    [
      'a NUL in a header value',
      'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\u0000b\r\n\r\n',
      400,
      'bad_request',
    ],
    [
      'headers over the 16 KiB limit',
      `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      431,
      'request_header_fields_too_large',
    ],
  ])('%s', async (_what, raw, status, code) => {
    const response = await exchange(raw);
    expect(response.status).toBe(status);
    expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(response.headers.connection).toBe('close');
    expect(Number(response.headers['content-length'])).toBe(Buffer.byteLength(response.body));
    const problem = JSON.parse(response.body);
    expect(problem).toEqual({
      type: `urn:problem:${code}`,
      title: status === 431 ? 'Request header fields too large' : 'Bad request',
      status,
      detail:
        status === 431
          ? 'The request headers are too large.'
          : 'The request is not valid HTTP/1.1.',
      code,
      requestId: response.headers['x-request-id'],
    });
    expect(problem.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('a path over the parameter limit and a path of invalid UTF-8, over a real socket too', async () => {
    const long = await exchange(
      `GET /api/v1/users/${'9'.repeat(101)}/balance HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    expect(long.status).toBe(414);
    expect(long.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(JSON.parse(long.body)).toMatchObject({ code: 'uri_too_long', status: 414 });
    const bad = await exchange(
      'GET /api/v1/users/%FF%FE/balance HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expect(bad.status).toBe(400);
    expect(bad.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(JSON.parse(bad.body)).toMatchObject({
      code: 'invalid_url',
      requestId: bad.headers['x-request-id'],
    });
  });

  it('the server still answers well-formed requests afterwards', async () => {
    const response = await exchange(
      'GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expect(response.status).toBe(200);
  });
});
