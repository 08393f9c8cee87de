import {
  Alert,
  Badge,
  Button,
  Card,
  Code,
  Group,
  NumberInput,
  Stack,
  Switch,
  Text,
  Textarea,
  TextInput,
  Title,
} from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { dataOf, type Ok } from '../../../shared/api.ts';
import { useApi, useAuth } from '../auth.tsx';
import { formatDateTime } from '../format.ts';
import { ReasonDialog } from '../ReasonDialog.tsx';

const text = {
  title: 'Settings',
  intro: 'Runtime settings: a change applies in every process within seconds and is audited.',
  override: 'override',
  environment: 'environment',
  defaultIs: (value: string) => `Default (environment): ${value}`,
  setBy: (who: string, when: string) => `Set by ${who}, ${when}`,
  useDefault: 'Use the default',
  review: (count: number) => `Review ${count} change${count === 1 ? '' : 's'}`,
  confirmTitle: 'Confirm the settings change',
  reason: 'Reason',
  cancel: 'Cancel',
  save: 'Save',
  saved: (count: number) => `Saved: ${count} setting${count === 1 ? '' : 's'} changed.`,
  badJson: 'Not valid JSON',
  jsonHint: 'JSON',
  readOnly: 'Only administrators change settings.',
} as const;

/** The draft of a setting whose override is to be removed (the environment's value applies). */
const USE_DEFAULT = Symbol('use the default');

type Setting = Ok<'/api/v1/admin/settings', 'get'>['settings'][number];

/** A value as the operator reads it: structured values as compact JSON. */
function shown(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** A structured setting is edited as JSON: its text, or undefined when it does not parse. */
function parsedJson(source: string): { value: unknown } | undefined {
  try {
    return { value: JSON.parse(source) };
  } catch {
    return undefined;
  }
}

const structured = new Set<Setting['type']>([
  'stars_packages',
  'provider_concurrency',
  'telegram_ids',
]);

function SettingField({
  setting,
  draft,
  disabled,
  onChange,
}: {
  setting: Setting;
  /** The operator's edit, undefined while the setting is unchanged. */
  draft: unknown;
  disabled: boolean;
  onChange: (value: unknown) => void;
}) {
  const value =
    draft === undefined ? setting.value : draft === USE_DEFAULT ? setting.default : draft;
  const label = <Code>{setting.key}</Code>;
  const description = setting.meaning;
  if (setting.type === 'boolean') {
    return (
      <Switch
        label={label}
        aria-label={setting.key}
        description={description}
        checked={value === true}
        disabled={disabled}
        onChange={(event) => onChange(event.currentTarget.checked)}
      />
    );
  }
  if (setting.type === 'integer') {
    return (
      <NumberInput
        label={label}
        aria-label={setting.key}
        description={description}
        value={typeof value === 'number' ? value : ''}
        min={setting.bounds.minimum}
        max={setting.bounds.maximum}
        allowDecimal={false}
        clampBehavior="none"
        disabled={disabled}
        onChange={(next) =>
          onChange(typeof next === 'number' ? next : setting.bounds.nullable ? null : undefined)
        }
      />
    );
  }
  if (structured.has(setting.type)) {
    const source = typeof draft === 'string' ? draft : JSON.stringify(value);
    return (
      <Textarea
        label={label}
        aria-label={setting.key}
        description={`${description} (${text.jsonHint})`}
        value={source}
        autosize
        minRows={1}
        styles={{ input: { fontFamily: 'var(--mantine-font-family-monospace)' } }}
        disabled={disabled}
        error={typeof draft === 'string' && !parsedJson(draft) ? text.badJson : undefined}
        onChange={(event) => onChange(event.currentTarget.value)}
      />
    );
  }
  return (
    <TextInput
      label={label}
      aria-label={setting.key}
      description={description}
      value={typeof value === 'string' ? value : ''}
      maxLength={setting.bounds.max_length}
      disabled={disabled}
      onChange={(event) => {
        const next = event.currentTarget.value;
        // An emptied field of a setting that may be null means "none".
        onChange(next === '' && setting.bounds.nullable ? null : next);
      }}
    />
  );
}

export function SettingsPage() {
  const api = useApi();
  const { me } = useAuth();
  const queries = useQueryClient();
  const isAdmin = me !== null && me !== false && me.role === 'admin';
  const [drafts, setDrafts] = useState<Record<string, unknown>>({});
  const [confirming, setConfirming] = useState(false);
  const [reason, setReason] = useState('');
  const [notice, setNotice] = useState<string | null>(null);

  const settings = useQuery({
    queryKey: ['settings'],
    queryFn: async () => dataOf(await api.GET('/api/v1/admin/settings')),
  });
  const list = settings.data?.settings ?? [];

  /** What would be sent: structured settings parsed, unchanged ones left out. */
  const changes: { setting: Setting; value: unknown; after: string }[] = [];
  let invalid = false;
  for (const setting of list) {
    const draft = drafts[setting.key];
    if (draft === undefined) continue;
    if (draft === USE_DEFAULT) {
      // null removes an override; a setting that may be null is set to its default instead.
      const value = setting.bounds.nullable ? setting.default : null;
      changes.push({ setting, value, after: text.defaultIs(shown(setting.default)) });
      continue;
    }
    let value: unknown = draft;
    if (structured.has(setting.type) && typeof draft === 'string') {
      const parsed = parsedJson(draft);
      if (!parsed) {
        invalid = true;
        continue;
      }
      value = parsed.value;
    }
    if (JSON.stringify(value) !== JSON.stringify(setting.value)) {
      changes.push({ setting, value, after: shown(value) });
    }
  }

  const save = useMutation({
    mutationFn: async (values: Record<string, unknown>) =>
      dataOf(
        await api.PATCH('/api/v1/admin/settings', { body: { values, reason: reason.trim() } }),
      ),
    onSuccess: async (answer) => {
      setConfirming(false);
      setReason('');
      setDrafts({});
      setNotice(text.saved(answer.changes.length));
      queries.setQueryData(['settings'], { settings: answer.settings });
      await queries.invalidateQueries({ queryKey: ['audit'] });
    },
  });
  const submit = (values: Record<string, unknown>) => {
    save.reset();
    setNotice(null);
    save.mutate(values);
  };

  return (
    <Stack>
      <Title order={2}>{text.title}</Title>
      <Text c="dimmed" size="sm">
        {isAdmin ? text.intro : text.readOnly}
      </Text>
      {notice && (
        <Alert color="green" role="status" withCloseButton onClose={() => setNotice(null)}>
          {notice}
        </Alert>
      )}
      {settings.error && (
        <Alert color="red" role="alert">
          {settings.error.message}
        </Alert>
      )}
      {list.map((setting) => (
        <Card key={setting.key} withBorder data-testid="setting" data-key={setting.key}>
          <Stack gap="xs">
            <SettingField
              setting={setting}
              draft={drafts[setting.key]}
              disabled={!isAdmin}
              onChange={(value) => setDrafts((current) => ({ ...current, [setting.key]: value }))}
            />
            <Group gap="xs" justify="space-between">
              <Group gap="xs">
                <Badge variant="dot" color={setting.source === 'override' ? 'orange' : 'gray'}>
                  {setting.source === 'override' ? text.override : text.environment}
                </Badge>
                <Text size="xs" c="dimmed">
                  {setting.source === 'override'
                    ? text.setBy(setting.updated_by ?? '—', formatDateTime(setting.updated_at))
                    : text.defaultIs(shown(setting.default))}
                </Text>
              </Group>
              {isAdmin && setting.source === 'override' && (
                <Button
                  size="xs"
                  variant="subtle"
                  onClick={() => {
                    setDrafts((current) => ({ ...current, [setting.key]: USE_DEFAULT }));
                  }}
                >
                  {text.useDefault}
                </Button>
              )}
            </Group>
          </Stack>
        </Card>
      ))}
      {isAdmin && (
        <Group justify="flex-end" pos="sticky" bottom={0} py="sm" bg="var(--mantine-color-body)">
          <Button
            disabled={changes.length === 0 || invalid}
            onClick={() => {
              save.reset();
              setConfirming(true);
            }}
          >
            {text.review(changes.length)}
          </Button>
        </Group>
      )}
      <ReasonDialog
        opened={confirming}
        onClose={() => setConfirming(false)}
        title={text.confirmTitle}
        reasonLabel={text.reason}
        reason={reason}
        onReason={setReason}
        error={save.error}
        pending={save.isPending}
        cancelLabel={text.cancel}
        confirmLabel={text.save}
        onConfirm={() =>
          submit(Object.fromEntries(changes.map(({ setting, value }) => [setting.key, value])))
        }
      >
        {changes.map(({ setting, after }) => (
          <Text key={setting.key} size="sm" data-testid="setting-change">
            <Code>{setting.key}</Code>: {shown(setting.value)} → {after}
          </Text>
        ))}
      </ReasonDialog>
    </Stack>
  );
}
