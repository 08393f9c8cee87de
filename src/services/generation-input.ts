import { AppError } from '../core/errors.ts';
import type { ModelKind, ModelParameter } from '../db/schema/index.ts';
import type { Language } from '../locales/index.ts';
import { referenceUrlProblem } from './reference-urls.ts';

/** What a generation asks for, before it is checked against its model. */
export interface GenerationInput {
  telegramId: number;
  model: string;
  prompt: string;
  parameters: Record<string, string>;
  references: string[];
  /** `auto` (default): a free generation while the user has one, else credits. */
  payment?: 'auto' | 'credits' | 'trial';
  /** Where the bot wants the result; without it, the user's own chat. */
  telegram?: TelegramContext;
}

/**
 * The chat the bot wants a generation's news in: the result replies to `replyToMessageId` (the
 * prompt), `statusMessageId` (the bot's "queued…" message) follows the generation, in `language`
 * (else the user's own, else DEFAULT_LANGUAGE).
 */
export interface TelegramContext {
  chatId: number;
  replyToMessageId?: number;
  statusMessageId?: number;
  language?: Language;
}

/** The limits of a catalog model that a request must respect. */
export interface ModelRules {
  key: string;
  /** A tool takes exactly one image and may have an empty prompt. */
  kind: ModelKind;
  parameters: ModelParameter[];
  max_prompt_length: number;
  max_references: number;
}

export interface FieldProblem {
  field: string;
  message: string;
}

export type Reference = { kind: 'telegram_file' | 'url' | 'upload'; value: string };

/** What POST /users/{telegram_id}/uploads answers: `upload:` and the stored image's name. */
export const UPLOAD_REFERENCE = /^upload:([A-Za-z0-9_-]{43}\.(?:png|jpg|webp|gif))$/;

// Telegram's file_id: URL-safe base64, long; anything else that is not a URL is refused.
const telegramFileId = /^[A-Za-z0-9_-]{20,255}$/;

/**
 * Checks the references that are URLs for private targets (resolving names, so it runs before any
 * transaction opens) and the form of the others. Answers the typed references and the problems.
 */
export async function checkReferences(
  values: readonly string[],
): Promise<{ references: Reference[]; problems: FieldProblem[] }> {
  const problems: FieldProblem[] = [];
  const references = await Promise.all(
    values.map(async (value, index): Promise<Reference> => {
      const upload = UPLOAD_REFERENCE.exec(value);
      if (upload?.[1]) return { kind: 'upload', value: upload[1] };
      if (/^[a-z][a-z0-9+.-]*:/i.test(value)) {
        const problem = await referenceUrlProblem(value);
        if (problem) problems.push({ field: `body.references.${index}`, message: problem });
        return { kind: 'url', value };
      }
      if (!telegramFileId.test(value)) {
        problems.push({
          field: `body.references.${index}`,
          message: 'must be a Telegram file_id, an https URL or an upload: reference',
        });
      }
      return { kind: 'telegram_file', value };
    }),
  );
  problems.sort((a, b) => a.field.localeCompare(b.field, 'en', { numeric: true }));
  return { references, problems };
}

/**
 * The parameters with defaults filled in, and what is wrong with the request for this model
 * (`parametersOnly`: the parameters alone, for a quote).
 */
export function checkAgainstModel(
  model: ModelRules,
  input: Pick<GenerationInput, 'prompt' | 'parameters' | 'references'>,
  options: { parametersOnly?: boolean } = {},
): { parameters: Record<string, string>; problems: FieldProblem[] } {
  const problems: FieldProblem[] = [];
  const parameters: Record<string, string> = {};
  const known = new Map(model.parameters.map((parameter) => [parameter.name, parameter]));
  for (const [name, value] of Object.entries(input.parameters)) {
    const parameter = known.get(name);
    if (!parameter) {
      const allowed = [...known.keys()];
      problems.push({
        field: `body.parameters.${name}`,
        message:
          allowed.length === 0
            ? `is not a parameter of ${model.key} (it takes none)`
            : `is not a parameter of ${model.key}; it takes ${allowed.join(', ')}`,
      });
    } else if (!parameter.values.includes(value)) {
      problems.push({
        field: `body.parameters.${name}`,
        message: `must be one of ${parameter.values.join(', ')}`,
      });
    }
  }
  for (const parameter of model.parameters) {
    parameters[parameter.name] = input.parameters[parameter.name] ?? parameter.default;
  }
  if (options.parametersOnly) return { parameters, problems };
  const prompt = input.prompt.trim();
  // A tool works on its image; what it is told is optional.
  if (prompt === '' && model.kind !== 'tool') {
    problems.push({ field: 'body.prompt', message: 'must not be empty' });
  }
  if ([...prompt].length > model.max_prompt_length) {
    problems.push({
      field: 'body.prompt',
      message: `must be at most ${model.max_prompt_length} characters for ${model.key}`,
    });
  }
  if (model.kind === 'tool' && input.references.length !== 1) {
    problems.push({
      field: 'body.references',
      message: `${model.key} works on exactly one image: give one reference (a Telegram file_id or an https URL)`,
    });
  } else if (input.references.length > model.max_references) {
    problems.push({
      field: 'body.references',
      message:
        model.max_references === 0
          ? `${model.key} takes no reference images`
          : `${model.key} takes at most ${model.max_references} reference images`,
    });
  }
  return { parameters, problems };
}

/** What is wrong with a Telegram context (the schema has checked the types and ranges). */
export function checkTelegram(telegram: TelegramContext | undefined): FieldProblem[] {
  if (telegram?.chatId === 0) return [{ field: 'body.telegram.chat_id', message: 'must not be 0' }];
  return [];
}

/** The 422 every field problem of a generation request becomes, all named at once. */
export function invalidGeneration(problems: readonly FieldProblem[]): AppError {
  return new AppError(
    'validation_failed',
    problems.map((problem) => `${problem.field} ${problem.message}`).join('; '),
    { errors: problems },
  );
}
