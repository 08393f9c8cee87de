import { readFileSync } from 'node:fs';

const packageJson = JSON.parse(
  readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
) as { name: string; version: string };

export const appName = 'imagegen-backend';
export const appVersion = packageJson.version;
export const apiVersion = 'v1';
