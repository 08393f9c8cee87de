import {
  Button,
  Fieldset,
  Group,
  NumberInput,
  Select,
  SimpleGrid,
  Stack,
  TagsInput,
  Text,
  Textarea,
  TextInput,
} from '@mantine/core';
import { ApiError } from '../../shared/api.ts';
import type { Parameter, WrittenModel } from './models.tsx';

/**
 * A model's fields as a form with the API's bounds, the price editor, and the API's refusals
 * placed beside the fields they name.
 */

/** The API's bounds (src/api/v1/admin-models.ts), so the form refuses what the API would. */
export const bounds = {
  key: { pattern: '^[a-z0-9][a-z0-9._-]{0,63}$', maxLength: 64 },
  name: { maxLength: 100 },
  description: { maxLength: 2000 },
  provider: { pattern: '^[a-z0-9_-]{1,32}$', maxLength: 32 },
  providerModel: { maxLength: 200 },
  maxPromptLength: { min: 1, max: 10_000 },
  maxReferences: { min: 0, max: 16 },
  typicalSeconds: { min: 1, max: 86_400 },
  sortOrder: { min: -1_000_000, max: 1_000_000 },
  credits: { min: 1, max: 1_000_000_000 },
  parameters: { max: 16, nameMaxLength: 32, labelMaxLength: 64, values: 50, valueMaxLength: 64 },
  prices: { max: 200 },
  reason: { maxLength: 500 },
} as const;

const unionNoise = new Set(['must be null', 'must match a schema in anyOf']);

/**
 * The API's field errors of a refusal, by the field they name (`body.prices.1.credits`): `of`
 * gives those of a field and its parts; `unplaced` those no field on the form claims.
 */
export function fieldErrors(error: Error | null) {
  const errors = error instanceof ApiError ? error.errors : [];
  const within = (field: string, prefix: string) =>
    field === prefix || field.startsWith(`${prefix}.`);
  return {
    /** The errors naming exactly this field (not its parts). */
    exact(field: string): string | undefined {
      const messages = errors.filter((entry) => entry.field === field).map((e) => e.message);
      return messages.length === 0 ? undefined : messages.join('; ');
    },
    of(prefix: string): string | undefined {
      const matching = errors.filter((entry) => within(entry.field, prefix));
      // A nullable field's refusal also says it is not null and fits none of its alternatives;
      // the message that says what is wrong with the value is the one to read.
      const telling = matching.filter((entry) => !unionNoise.has(entry.message));
      const messages = (telling.length > 0 ? telling : matching).map((entry) =>
        entry.field === prefix
          ? entry.message
          : `${entry.field.slice(prefix.length + 1)} ${entry.message}`,
      );
      return messages.length === 0 ? undefined : messages.join('; ');
    },
    unplaced(prefixes: readonly string[]): boolean {
      return (
        errors.length === 0 ||
        errors.some((entry) => !prefixes.some((prefix) => within(entry.field, prefix)))
      );
    },
  };
}

/** The fields of the form besides key, kind and prices; numbers '' while emptied. */
export interface DetailsDraft {
  name: string;
  description: string;
  provider: string;
  provider_model: string;
  /** '' for none. */
  provider_edit_model: string;
  max_prompt_length: number | '';
  max_references: number | '';
  /** '' for unknown. */
  typical_seconds: number | '';
  sort_order: number | '';
  parameters: Parameter[];
}

export function detailsOf(model: WrittenModel): DetailsDraft {
  return {
    name: model.name,
    description: model.description,
    provider: model.provider,
    provider_model: model.provider_model,
    provider_edit_model: model.provider_edit_model ?? '',
    max_prompt_length: model.max_prompt_length,
    max_references: model.max_references,
    typical_seconds: model.typical_seconds ?? '',
    sort_order: model.sort_order,
    parameters: model.parameters,
  };
}

/** The draft as the API's fields: emptied optional numbers null, emptied required ones left out. */
export function detailsBody(draft: DetailsDraft) {
  const number = (value: number | '') => (value === '' ? undefined : value);
  return {
    name: draft.name,
    description: draft.description,
    provider: draft.provider,
    provider_model: draft.provider_model,
    provider_edit_model: draft.provider_edit_model.trim() === '' ? null : draft.provider_edit_model,
    max_prompt_length: number(draft.max_prompt_length),
    max_references: number(draft.max_references),
    typical_seconds: draft.typical_seconds === '' ? null : draft.typical_seconds,
    sort_order: number(draft.sort_order),
    parameters: draft.parameters,
  };
}

/** The prefixes of the API's field names the details form shows errors beside. */
export const detailFields = [
  'body.name',
  'body.description',
  'body.provider',
  'body.provider_model',
  'body.provider_edit_model',
  'body.max_prompt_length',
  'body.max_references',
  'body.typical_seconds',
  'body.sort_order',
  'body.parameters',
] as const;

function numberChange(value: string | number): number | '' {
  return typeof value === 'number' ? value : '';
}

/** One parameter: an enum a user chooses from, with its default among its values. */
function ParameterFields({
  index,
  parameter,
  disabled,
  error,
  onChange,
  onRemove,
}: {
  index: number;
  parameter: Parameter;
  disabled: boolean;
  error: (field: string) => string | undefined;
  onChange: (parameter: Parameter) => void;
  onRemove: () => void;
}) {
  const field = `body.parameters.${index}`;
  return (
    <Fieldset legend={`Parameter ${index + 1}`} data-testid="parameter">
      <SimpleGrid cols={{ base: 1, sm: 2 }}>
        <TextInput
          label="Parameter name"
          description="Lower case, as the API takes it (aspect_ratio)"
          value={parameter.name}
          maxLength={bounds.parameters.nameMaxLength}
          required
          disabled={disabled}
          error={error(`${field}.name`)}
          onChange={(event) => onChange({ ...parameter, name: event.currentTarget.value })}
        />
        <TextInput
          label="Label"
          description="What users read"
          value={parameter.label}
          maxLength={bounds.parameters.labelMaxLength}
          required
          disabled={disabled}
          error={error(`${field}.label`)}
          onChange={(event) => onChange({ ...parameter, label: event.currentTarget.value })}
        />
        <TagsInput
          label="Values"
          description="Enter after each"
          value={parameter.values}
          maxTags={bounds.parameters.values}
          maxLength={bounds.parameters.valueMaxLength}
          disabled={disabled}
          error={error(`${field}.values`)}
          onChange={(values) =>
            onChange({
              ...parameter,
              values,
              default: values.includes(parameter.default) ? parameter.default : (values[0] ?? ''),
            })
          }
        />
        <Select
          label="Default"
          data={parameter.values}
          value={parameter.default || null}
          allowDeselect={false}
          disabled={disabled}
          error={error(`${field}.default`)}
          onChange={(value) => onChange({ ...parameter, default: value ?? '' })}
        />
      </SimpleGrid>
      {!disabled && (
        <Group justify="flex-end" mt="xs">
          <Button size="xs" variant="subtle" color="red" onClick={onRemove}>
            Remove parameter {index + 1}
          </Button>
        </Group>
      )}
    </Fieldset>
  );
}

/** The model's fields besides key, kind and prices, each with its bound and the API's error. */
export function DetailsFields({
  draft,
  onChange,
  disabled,
  error,
}: {
  draft: DetailsDraft;
  onChange: (draft: DetailsDraft) => void;
  disabled: boolean;
  error: Error | null;
}) {
  const errors = fieldErrors(error);
  const set = <Field extends keyof DetailsDraft>(field: Field, value: DetailsDraft[Field]) =>
    onChange({ ...draft, [field]: value });
  const required = (value: number | '') => (value === '' ? 'Required' : undefined);
  return (
    <Stack>
      <SimpleGrid cols={{ base: 1, sm: 2 }}>
        <TextInput
          label="Name"
          value={draft.name}
          maxLength={bounds.name.maxLength}
          required
          disabled={disabled}
          error={errors.of('body.name')}
          onChange={(event) => set('name', event.currentTarget.value)}
        />
        <NumberInput
          label="Order"
          description="Lower comes first in the bot and the Mini App"
          value={draft.sort_order}
          min={bounds.sortOrder.min}
          max={bounds.sortOrder.max}
          allowDecimal={false}
          clampBehavior="none"
          required
          disabled={disabled}
          error={errors.of('body.sort_order') ?? required(draft.sort_order)}
          onChange={(value) => set('sort_order', numberChange(value))}
        />
      </SimpleGrid>
      <Textarea
        label="Description"
        value={draft.description}
        maxLength={bounds.description.maxLength}
        autosize
        minRows={2}
        disabled={disabled}
        error={errors.of('body.description')}
        onChange={(event) => set('description', event.currentTarget.value)}
      />
      <SimpleGrid cols={{ base: 1, sm: 3 }}>
        <TextInput
          label="Provider"
          description="First route: wavespeed, replicate…"
          value={draft.provider}
          maxLength={bounds.provider.maxLength}
          pattern={bounds.provider.pattern}
          required
          disabled={disabled}
          error={errors.of('body.provider')}
          onChange={(event) => set('provider', event.currentTarget.value)}
        />
        <TextInput
          label="Provider model"
          description="The provider's name for it"
          value={draft.provider_model}
          maxLength={bounds.providerModel.maxLength}
          required
          disabled={disabled}
          error={errors.of('body.provider_model')}
          onChange={(event) => set('provider_model', event.currentTarget.value)}
        />
        <TextInput
          label="Provider edit model"
          description="For edits with references; empty: none"
          value={draft.provider_edit_model}
          maxLength={bounds.providerModel.maxLength}
          disabled={disabled}
          error={errors.of('body.provider_edit_model')}
          onChange={(event) => set('provider_edit_model', event.currentTarget.value)}
        />
      </SimpleGrid>
      <SimpleGrid cols={{ base: 1, xs: 3 }}>
        <NumberInput
          label="Longest prompt"
          description="Characters"
          value={draft.max_prompt_length}
          min={bounds.maxPromptLength.min}
          max={bounds.maxPromptLength.max}
          allowDecimal={false}
          clampBehavior="none"
          required
          disabled={disabled}
          error={errors.of('body.max_prompt_length') ?? required(draft.max_prompt_length)}
          onChange={(value) => set('max_prompt_length', numberChange(value))}
        />
        <NumberInput
          label="Reference images"
          description="At most; 0: text only"
          value={draft.max_references}
          min={bounds.maxReferences.min}
          max={bounds.maxReferences.max}
          allowDecimal={false}
          clampBehavior="none"
          required
          disabled={disabled}
          error={errors.of('body.max_references') ?? required(draft.max_references)}
          onChange={(value) => set('max_references', numberChange(value))}
        />
        <NumberInput
          label="Typical seconds"
          description="Empty: unknown"
          value={draft.typical_seconds}
          min={bounds.typicalSeconds.min}
          max={bounds.typicalSeconds.max}
          allowDecimal={false}
          clampBehavior="none"
          disabled={disabled}
          error={errors.of('body.typical_seconds')}
          onChange={(value) => set('typical_seconds', numberChange(value))}
        />
      </SimpleGrid>
      {errors.exact('body.parameters') && (
        <Text c="red" size="sm" role="alert">
          Parameters {errors.exact('body.parameters')}
        </Text>
      )}
      {draft.parameters.map((parameter, index) => (
        <ParameterFields
          // Parameters have no identity but their place; a rename must not remount the row.
          // biome-ignore lint/suspicious/noArrayIndexKey: see above
          key={index}
          index={index}
          parameter={parameter}
          disabled={disabled}
          error={errors.of}
          onChange={(next) =>
            set(
              'parameters',
              draft.parameters.map((current, at) => (at === index ? next : current)),
            )
          }
          onRemove={() =>
            set(
              'parameters',
              draft.parameters.filter((_, at) => at !== index),
            )
          }
        />
      ))}
      {!disabled && draft.parameters.length < bounds.parameters.max && (
        <Group>
          <Button
            size="xs"
            variant="default"
            onClick={() =>
              set('parameters', [
                ...draft.parameters,
                { name: '', label: '', type: 'enum', values: [], default: '' },
              ])
            }
          >
            Add a parameter
          </Button>
        </Group>
      )}
    </Stack>
  );
}

/** A price as edited: credits '' while emptied. */
export interface PriceDraft {
  conditions: Record<string, string>;
  credits: number | '';
}

export function priceDrafts(model: { prices: PriceDraft[] }): PriceDraft[] {
  return model.prices.map((price) => ({ conditions: price.conditions, credits: price.credits }));
}

export function pricesBody(prices: readonly PriceDraft[]) {
  return prices.map((price) => ({
    conditions: price.conditions,
    credits: price.credits === '' ? 0 : price.credits,
  }));
}

/** The prices from now on: per price, the parameter values it applies to and its credits. */
export function PricesEditor({
  prices,
  parameters,
  onChange,
  disabled,
  error,
}: {
  prices: PriceDraft[];
  parameters: readonly Parameter[];
  onChange: (prices: PriceDraft[]) => void;
  disabled: boolean;
  error: Error | null;
}) {
  const errors = fieldErrors(error);
  const update = (index: number, price: PriceDraft) =>
    onChange(prices.map((current, at) => (at === index ? price : current)));
  return (
    <Stack gap="sm">
      {prices.map((price, index) => {
        const field = `body.prices.${index}`;
        return (
          <Fieldset
            // biome-ignore lint/suspicious/noArrayIndexKey: a price's place is its identity here
            key={index}
            legend={`Price ${index + 1}`}
            data-testid="price-draft"
          >
            <SimpleGrid cols={{ base: 1, xs: 2, md: Math.min(parameters.length + 1, 4) }}>
              {parameters.map((parameter) => (
                <Select
                  key={parameter.name}
                  label={parameter.label || parameter.name}
                  placeholder="any"
                  data={parameter.values}
                  value={price.conditions[parameter.name] ?? null}
                  clearable
                  disabled={disabled}
                  error={errors.of(`${field}.conditions.${parameter.name}`)}
                  onChange={(value) => {
                    const { [parameter.name]: _dropped, ...others } = price.conditions;
                    update(index, {
                      ...price,
                      conditions: value === null ? others : { ...others, [parameter.name]: value },
                    });
                  }}
                />
              ))}
              <NumberInput
                label="Credits"
                value={price.credits}
                min={bounds.credits.min}
                max={bounds.credits.max}
                allowDecimal={false}
                clampBehavior="none"
                required
                disabled={disabled}
                error={
                  errors.of(`${field}.credits`) ??
                  errors.of(`${field}.conditions`) ??
                  (price.credits === '' ? 'Required' : undefined)
                }
                onChange={(value) => update(index, { ...price, credits: numberChange(value) })}
              />
            </SimpleGrid>
            {!disabled && prices.length > 1 && (
              <Group justify="flex-end" mt="xs">
                <Button
                  size="xs"
                  variant="subtle"
                  color="red"
                  onClick={() => onChange(prices.filter((_, at) => at !== index))}
                >
                  Remove price {index + 1}
                </Button>
              </Group>
            )}
          </Fieldset>
        );
      })}
      {errors.exact('body.prices') && (
        <Text c="red" size="sm" role="alert">
          Prices {errors.exact('body.prices')}
        </Text>
      )}
      {!disabled && prices.length < bounds.prices.max && parameters.length > 0 && (
        <Group>
          <Button
            size="xs"
            variant="default"
            onClick={() => onChange([...prices, { conditions: {}, credits: '' }])}
          >
            Add a price for some parameter values
          </Button>
        </Group>
      )}
    </Stack>
  );
}
