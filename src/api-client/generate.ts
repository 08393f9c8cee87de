// `npm run api:client`: writes src/api-client/schema.ts from the API's own OpenAPI document.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../app.ts';
import { loadConfig } from '../core/config.ts';
import { renderApiTypes } from './render.ts';

const app = await buildApp(
  loadConfig({ DATABASE_URL: 'memory://', LOG_LEVEL: 'silent', NODE_ENV: 'test' }),
  { worker: false },
);
try {
  const target = fileURLToPath(new URL('./schema.ts', import.meta.url));
  writeFileSync(target, await renderApiTypes(app.swagger()));
  process.stdout.write(`wrote ${target}\n`);
} finally {
  await app.close();
}
