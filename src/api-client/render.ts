import openapiTS, { astToString, COMMENT_HEADER, type OpenAPI3 } from 'openapi-typescript';

/**
 * The TypeScript types of our own OpenAPI document, as committed in schema.ts. The bot (and the
 * web apps) call the API through openapi-fetch with these types, so a route's request or answer
 * changing breaks their type-check instead of their users. `npm run api:client` writes the file;
 * a test fails when it is stale.
 */
export async function renderApiTypes(document: unknown): Promise<string> {
  const ast = await openapiTS(document as OpenAPI3, { alphabetize: true });
  return `${COMMENT_HEADER}// Generated from GET /docs/json by \`npm run api:client\`; do not edit.\n\n${astToString(ast)}`;
}
