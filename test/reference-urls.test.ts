import type { LightMyRequestResponse } from 'fastify';
import { describe, expect, it } from 'vitest';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { isPrivateAddress, referenceUrlProblem } from '../src/services/reference-urls.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { buildTestApp } from './helpers/app.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';
import { createTestModel, submit, userWithCredits } from './helpers/pipeline.ts';

function expectProblem(response: LightMyRequestResponse, status: number, code: string) {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toContain('application/problem+json');
  expect(response.json()).toMatchObject({ status, code });
}

describe('reference URLs: only public unicast addresses, and only names that resolve', () => {
  it.each([
    // NAT64 (well-known prefix) carrying private, loopback and metadata addresses
    ['64:ff9b::10.0.0.1', true],
    ['64:ff9b::127.0.0.1', true],
    ['64:ff9b::a9fe:a9fe', true],
    ['64:ff9b:1::a00:1', true], // local-use NAT64: where the IPv4 sits is the operator's choice
    // 6to4 carrying 10.0.0.1 and 127.0.0.1
    ['2002:a00:1::1', true],
    ['2002:7f00:1::', true],
    // site-local, SIIT, IPv4-compatible, Teredo, documentation, discard, multicast, unique local
    ['fec0::1', true],
    ['::ffff:0:127.0.0.1', true],
    ['::7f00:1', true],
    ['2001::1', true],
    ['2001:db8::1', true],
    ['100::1', true],
    ['ff02::1', true],
    ['fd12:3456::1', true],
    ['::ffff:169.254.169.254', true],
    ['::', true],
    // IPv4 special ranges
    ['0.0.0.0', true],
    ['100.64.0.1', true],
    ['192.0.2.10', true],
    ['198.51.100.7', true],
    ['203.0.113.9', true],
    ['255.255.255.255', true],
    ['240.0.0.1', true],
    // public: IPv4, IPv6, and the IPv6 forms carrying a public IPv4
    ['93.184.215.14', false],
    ['2606:4700::1111', false],
    ['64:ff9b::5db8:d70e', false],
    ['2002:5db8:d70e::1', false],
    ['::ffff:93.184.215.14', false],
    ['not an address', true],
  ])('%s is private: %s', (address, expected) => {
    expect(isPrivateAddress(address)).toBe(expected);
  });

  it('refuses URLs whose literal address is one of them', async () => {
    for (const host of ['[64:ff9b::a00:1]', '[2002:a00:1::1]', '[fec0::1]']) {
      expect(await referenceUrlProblem(`https://${host}/a.png`)).toMatch(/private/);
    }
  });

  it('refuses a name that does not resolve, or not in time', async () => {
    const notFound = Object.assign(new Error('getaddrinfo ENOTFOUND cdn.example.com'), {
      code: 'ENOTFOUND',
    });
    expect(
      await referenceUrlProblem('https://cdn.example.com/a.png', async () => {
        throw notFound;
      }),
    ).toBe('cannot be checked: its host cdn.example.com does not resolve to an address');
    expect(await referenceUrlProblem('https://cdn.example.com/a.png', async () => [])).toMatch(
      /does not resolve/,
    );
    expect(
      await referenceUrlProblem(
        'https://cdn.example.com/a.png',
        () => new Promise<string[]>(() => undefined),
        20,
      ),
    ).toBe('cannot be checked: its host cdn.example.com did not resolve within 0.02 s');
    expect(
      await referenceUrlProblem('https://cdn.example.com/a.png', async () => ['64:ff9b::a00:1']),
    ).toMatch(/private/);
  });

  it('POST /generations answers 422 naming the reference whose host does not resolve', async () => {
    const provider = new ScriptedProvider();
    const app = await buildTestApp({}, undefined, {
      providers: new ProviderRegistry([provider], 'catalog'),
    });
    try {
      const model = await createTestModel((await sharedDatabase()).db, { provider: provider.name });
      const telegramId = freshTelegramId();
      await userWithCredits(app, telegramId, 100);
      // .invalid never resolves (RFC 6761).
      const response = await submit(app, {
        telegram_id: telegramId,
        model: model.key,
        prompt: 'x',
        references: ['https://93.184.215.14/ok.png', 'https://images.example.invalid/a.png'],
      });
      expectProblem(response, 422, 'validation_failed');
      expect(response.json().errors).toEqual([
        {
          field: 'body.references.1',
          message: expect.stringMatching(/images\.example\.invalid.*resolve/),
        },
      ]);
    } finally {
      await app.close();
    }
  });
});
