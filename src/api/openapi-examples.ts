/**
 * Examples for the OpenAPI document, built from the schemas themselves: a schema's own `examples`
 * win at any depth (a Telegram user, a generation), and what has none is filled from its `default`,
 * `const`, `enum`, `format` and bounds. The OpenAPI test validates every example against its schema,
 * so an example cannot drift from what the API accepts and answers.
 */

/** A JSON Schema as the routes declare it (TypeBox's output or a plain object). */
type Schema = Readonly<Record<string, unknown>>;

/** Looks up a `$ref` (e.g. the shared Problem schema); null when unknown. */
export type RefResolver = (ref: string) => unknown;

const EXAMPLE_TIME = '2026-11-27T09:14:05.512Z';
const EXAMPLE_UUID = '0b7c6f2e-5d1a-4c3e-9f8a-2d6b1e4c7a90';

const byFormat: Record<string, string> = {
  'date-time': EXAMPLE_TIME,
  date: EXAMPLE_TIME.slice(0, 10),
  uuid: EXAMPLE_UUID,
  uri: 'https://example.com/',
  url: 'https://example.com/',
  email: 'operator@example.com',
  binary: '',
};

function isSchema(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNullSchema(schema: Schema): boolean {
  return schema.type === 'null' || (schema.const === null && schema.type === undefined);
}

function typesOf(schema: Schema): string[] {
  if (Array.isArray(schema.type))
    return schema.type.filter((t): t is string => typeof t === 'string');
  return typeof schema.type === 'string' ? [schema.type] : [];
}

function numberExample(schema: Schema, integer: boolean): number {
  const minimum = typeof schema.minimum === 'number' ? schema.minimum : undefined;
  const maximum = typeof schema.maximum === 'number' ? schema.maximum : undefined;
  let value = minimum !== undefined && minimum > 1 ? minimum : 1;
  if (maximum !== undefined && value > maximum) value = maximum;
  return integer ? Math.ceil(value) : value;
}

function stringExample(schema: Schema): string {
  const format = typeof schema.format === 'string' ? byFormat[schema.format] : undefined;
  let value = format ?? 'text';
  const minLength = typeof schema.minLength === 'number' ? schema.minLength : 0;
  const maxLength = typeof schema.maxLength === 'number' ? schema.maxLength : Infinity;
  if (value.length < minLength) value = value.padEnd(minLength, 'x');
  if (value.length > maxLength) value = value.slice(0, maxLength);
  return value;
}

/** An example value that `schema` accepts (as far as bounds and formats go; see above). */
export function exampleOf(schema: unknown, resolve: RefResolver, depth = 0): unknown {
  if (!isSchema(schema) || depth > 32) return null;
  if (Array.isArray(schema.examples) && schema.examples.length > 0) return schema.examples[0];
  if ('example' in schema) return schema.example;
  if ('const' in schema) return schema.const;
  if ('default' in schema) return schema.default;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  if (typeof schema.$ref === 'string') return exampleOf(resolve(schema.$ref), resolve, depth + 1);

  for (const combinator of ['anyOf', 'oneOf'] as const) {
    const members = schema[combinator];
    if (Array.isArray(members) && members.length > 0) {
      const chosen = members.filter(isSchema).find((member) => !isNullSchema(member)) ?? members[0];
      return exampleOf(chosen, resolve, depth + 1);
    }
  }
  if (Array.isArray(schema.allOf)) {
    const parts = schema.allOf.map((member) => exampleOf(member, resolve, depth + 1));
    if (parts.every((part) => isSchema(part))) return Object.assign({}, ...parts);
    return parts[0] ?? null;
  }

  const types = typesOf(schema);
  const type = types.find((t) => t !== 'null') ?? types[0] ?? (schema.properties ? 'object' : '');
  switch (type) {
    case 'null':
      return null;
    case 'boolean':
      return false;
    case 'integer':
      return numberExample(schema, true);
    case 'number':
      return numberExample(schema, false);
    case 'string':
      return stringExample(schema);
    case 'array': {
      const item = exampleOf(schema.items, resolve, depth + 1);
      const count =
        typeof schema.minItems === 'number' && schema.minItems > 1 ? schema.minItems : 1;
      const maxItems = typeof schema.maxItems === 'number' ? schema.maxItems : Infinity;
      return Array.from({ length: Math.min(count, maxItems) }, () => item);
    }
    case 'object': {
      const properties = isSchema(schema.properties) ? schema.properties : {};
      return Object.fromEntries(
        Object.entries(properties).map(([name, property]) => [
          name,
          exampleOf(property, resolve, depth + 1),
        ]),
      );
    }
    default:
      return {};
  }
}
