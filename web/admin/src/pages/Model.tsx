import {
  Alert,
  Anchor,
  Badge,
  Button,
  Card,
  Code,
  Group,
  Loader,
  SegmentedControl,
  SimpleGrid,
  Stack,
  Switch,
  Text,
  Textarea,
  TextInput,
  Title,
} from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, type ReactNode, useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { ApiError, dataOf } from '../../../shared/api.ts';
import { useApi, useAuth } from '../auth.tsx';
import { formatCredits, formatDateTime } from '../format.ts';
import {
  bounds,
  type DetailsDraft,
  DetailsFields,
  detailFields,
  detailsBody,
  detailsOf,
  fieldErrors,
  type PriceDraft,
  PricesEditor,
  priceDrafts,
  pricesBody,
} from '../model-form.tsx';
import {
  ActiveButton,
  type AdminModel,
  availabilityText,
  conditionsText,
  PriceHistory,
} from '../models.tsx';
import { ReasonDialog } from '../ReasonDialog.tsx';

function useIsAdmin(): boolean {
  const { me } = useAuth();
  return me !== null && me !== false && me.role === 'admin';
}

/** The refusal's detail, unless every field it names is marked on the form already. */
function FormError({ error, fields }: { error: Error | null; fields: readonly string[] }) {
  if (!error) return null;
  const placed = !fieldErrors(error).unplaced(fields);
  return (
    <Alert color="red" role="alert">
      {placed ? 'The API refused some fields: see the messages beside them.' : error.message}
    </Alert>
  );
}

function ReasonField({ value, onChange }: { value: string; onChange: (value: string) => void }) {
  return (
    <Textarea
      label="Reason (audited, optional)"
      value={value}
      maxLength={bounds.reason.maxLength}
      autosize
      minRows={1}
      onChange={(event) => onChange(event.currentTarget.value)}
    />
  );
}

/** The changed fields of the draft, as PATCH takes them. */
function changedFields(model: AdminModel, draft: DetailsDraft) {
  const before = detailsBody(detailsOf(model));
  const after = detailsBody(draft);
  return Object.fromEntries(
    Object.entries(after).filter(
      ([field, value]) =>
        value !== undefined &&
        JSON.stringify(value) !== JSON.stringify(before[field as keyof typeof before]),
    ),
  ) as Partial<typeof after>;
}

function Fact({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div>
      <Text size="xs" c="dimmed">
        {label}
      </Text>
      <Text size="sm" component="div">
        {children}
      </Text>
    </div>
  );
}

/** The model's fields as read; the form only once an admin edits them (a form is slow to draw). */
function DetailsSummary({ model }: { model: AdminModel }) {
  return (
    <Stack gap="sm">
      <SimpleGrid cols={{ base: 2, sm: 4 }}>
        <Fact label="Name">{model.name}</Fact>
        <Fact label="Order">{model.sort_order}</Fact>
        <Fact label="Longest prompt">{formatCredits(model.max_prompt_length)} characters</Fact>
        <Fact label="Reference images">{model.max_references}</Fact>
        <Fact label="Typical seconds">{model.typical_seconds ?? '—'}</Fact>
        <Fact label="Kind">{model.kind}</Fact>
      </SimpleGrid>
      <Fact label="Description">{model.description || '—'}</Fact>
      <Fact label="Providers, in order">
        {model.routes.map((route) => (
          <div key={route.priority}>
            {route.priority}. {route.provider} · <Code>{route.provider_model}</Code>
            {route.provider_edit_model && (
              <>
                {' '}
                (edits: <Code>{route.provider_edit_model}</Code>)
              </>
            )}
          </div>
        ))}
      </Fact>
      <Fact label="Parameters">
        {model.parameters.length === 0
          ? 'none'
          : model.parameters.map((parameter) => (
              <div key={parameter.name}>
                {parameter.label} (<Code>{parameter.name}</Code>): {parameter.values.join(', ')}{' '}
                (default {parameter.default})
              </div>
            ))}
      </Fact>
    </Stack>
  );
}

function DetailsCard({ model, isAdmin }: { model: AdminModel; isAdmin: boolean }) {
  const api = useApi();
  const queries = useQueryClient();
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(() => detailsOf(model));
  const [reason, setReason] = useState('');
  const [saved, setSaved] = useState(false);
  const changes = changedFields(model, draft);
  const save = useMutation({
    mutationFn: async () =>
      dataOf(
        await api.PATCH('/api/v1/admin/models/{key}', {
          params: { path: { key: model.key } },
          body: { ...changes, ...(reason.trim() === '' ? {} : { reason: reason.trim() }) },
        }),
      ),
    onSuccess: async () => {
      setEditing(false);
      setReason('');
      setSaved(true);
      await queries.invalidateQueries({ queryKey: ['models'] });
      await queries.invalidateQueries({ queryKey: ['audit'] });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    save.mutate();
  };
  const emptied = [draft.max_prompt_length, draft.max_references, draft.sort_order].includes('');
  return (
    <Card withBorder component="section" aria-labelledby="details-title">
      <Stack>
        <Group justify="space-between">
          <Title order={3} size="h4" id="details-title">
            Details
          </Title>
          {isAdmin && !editing && (
            <Button
              size="xs"
              variant="default"
              onClick={() => {
                save.reset();
                setSaved(false);
                setDraft(detailsOf(model));
                setEditing(true);
              }}
            >
              Edit details
            </Button>
          )}
        </Group>
        {saved && (
          <Alert color="green" role="status" withCloseButton onClose={() => setSaved(false)}>
            Saved.
          </Alert>
        )}
        {!editing && <DetailsSummary model={model} />}
        {editing && (
          <form onSubmit={submit} noValidate>
            <Stack>
              <DetailsFields
                draft={draft}
                onChange={setDraft}
                disabled={false}
                error={save.error}
              />
              <ReasonField value={reason} onChange={setReason} />
              <FormError error={save.error} fields={detailFields} />
              <Group justify="flex-end">
                <Button variant="default" onClick={() => setEditing(false)}>
                  Cancel
                </Button>
                <Button
                  type="submit"
                  loading={save.isPending}
                  disabled={Object.keys(changes).length === 0 || emptied}
                >
                  Save details
                </Button>
              </Group>
            </Stack>
          </form>
        )}
      </Stack>
    </Card>
  );
}

function PricesCard({ model, isAdmin }: { model: AdminModel; isAdmin: boolean }) {
  const api = useApi();
  const queries = useQueryClient();
  const [editing, setEditing] = useState(false);
  const [drafts, setDrafts] = useState<PriceDraft[]>(() => priceDrafts(model));
  const [confirming, setConfirming] = useState(false);
  const [reason, setReason] = useState('');
  const [notice, setNotice] = useState<string | null>(null);
  const history = useQuery({
    queryKey: ['models', model.key, 'prices'],
    queryFn: async () =>
      dataOf(
        await api.GET('/api/v1/admin/models/{key}/prices', {
          params: { path: { key: model.key } },
        }),
      ),
  });
  const changed =
    JSON.stringify(pricesBody(drafts)) !== JSON.stringify(pricesBody(priceDrafts(model)));
  const replace = useMutation({
    mutationFn: async () =>
      dataOf(
        await api.PUT('/api/v1/admin/models/{key}/prices', {
          params: { path: { key: model.key } },
          body: { prices: pricesBody(drafts), reason: reason.trim() },
        }),
      ),
    onSuccess: async () => {
      setConfirming(false);
      setEditing(false);
      setReason('');
      setNotice('New prices set; they apply to generations accepted from now on.');
      await queries.invalidateQueries({ queryKey: ['models'] });
      await queries.invalidateQueries({ queryKey: ['audit'] });
    },
  });
  const recent = history.data?.prices.slice(0, 10) ?? [];
  return (
    <Card withBorder component="section" aria-labelledby="prices-title">
      <Stack>
        <Title order={3} size="h4" id="prices-title">
          Prices
        </Title>
        <Text size="sm" c="dimmed">
          Credits per image. The most specific price whose parameter values all match applies; one
          must apply to the defaults.
        </Text>
        {notice && (
          <Alert color="green" role="status" withCloseButton onClose={() => setNotice(null)}>
            {notice}
          </Alert>
        )}
        {isAdmin && !editing && (
          <Group>
            <Button
              variant="default"
              onClick={() => {
                replace.reset();
                setNotice(null);
                setDrafts(priceDrafts(model));
                setEditing(true);
              }}
            >
              Change prices
            </Button>
          </Group>
        )}
        {editing && (
          <>
            <PricesEditor
              prices={drafts}
              parameters={model.parameters}
              onChange={setDrafts}
              disabled={false}
              error={replace.error}
            />
            {replace.error && !confirming && (
              <FormError error={replace.error} fields={['body.prices']} />
            )}
            <Group justify="flex-end">
              <Button variant="default" onClick={() => setEditing(false)}>
                Cancel
              </Button>
              <Button
                disabled={!changed || drafts.some((price) => price.credits === '')}
                onClick={() => {
                  replace.reset();
                  setConfirming(true);
                }}
              >
                Review new prices
              </Button>
            </Group>
          </>
        )}
        <Title order={4} size="h5" id="history-title">
          Price history
        </Title>
        {history.error && (
          <Alert color="red" role="alert">
            {history.error.message}
          </Alert>
        )}
        {history.data && <PriceHistory entries={history.data.prices} />}
      </Stack>
      <ReasonDialog
        opened={confirming}
        onClose={() => setConfirming(false)}
        title="Set new prices"
        reasonLabel="Reason"
        reason={reason}
        onReason={setReason}
        error={replace.error}
        pending={replace.isPending}
        cancelLabel="Cancel"
        confirmLabel="Set prices"
        onConfirm={() => replace.mutate()}
      >
        <Text size="sm">
          From now on, {model.name} costs (generations already accepted keep their price):
        </Text>
        <Stack gap={2} data-testid="price-change">
          {drafts.map((price) => {
            const conditions = JSON.stringify(price.conditions);
            const before = model.prices.find(
              (current) => JSON.stringify(current.conditions) === conditions,
            );
            return (
              <Text size="sm" key={conditions}>
                {conditionsText(price.conditions)}:{' '}
                {before ? `${formatCredits(before.credits)} → ` : 'new: '}
                {price.credits === '' ? '—' : formatCredits(price.credits)} credits
              </Text>
            );
          })}
          {model.prices
            .filter(
              (current) =>
                !drafts.some(
                  (price) =>
                    JSON.stringify(price.conditions) === JSON.stringify(current.conditions),
                ),
            )
            .map((current) => (
              <Text size="sm" key={current.id}>
                {conditionsText(current.conditions)}: {formatCredits(current.credits)} → removed
              </Text>
            ))}
        </Stack>
        {recent.length > 0 && (
          <>
            <Text size="sm" fw={600}>
              Price history
            </Text>
            <PriceHistory entries={recent} />
          </>
        )}
      </ReasonDialog>
    </Card>
  );
}

/** One model: its details, its prices and their history; read-only for support. */
export function ModelPage() {
  const api = useApi();
  const isAdmin = useIsAdmin();
  const key = useParams().key ?? '';
  const models = useQuery({
    queryKey: ['models'],
    queryFn: async () => dataOf(await api.GET('/api/v1/admin/models')),
  });
  const model = models.data?.models.find((candidate) => candidate.key === key);
  if (models.error) {
    return (
      <Alert color="red" role="alert">
        {models.error.message}
      </Alert>
    );
  }
  if (!models.data) return <Loader aria-label="Loading" />;
  if (!model) {
    return (
      <Alert color="red" role="alert" title="No such model">
        No model has the key {key}.
      </Alert>
    );
  }
  return (
    <Stack>
      <Anchor component={Link} to="/models" size="sm">
        ← Models and prices
      </Anchor>
      <Group justify="space-between" align="flex-start">
        <div>
          <Title order={2}>{model.name}</Title>
          <Text c="dimmed" size="sm">
            <Code>{model.key}</Code> · {model.kind} · updated {formatDateTime(model.updated_at)}
          </Text>
        </div>
        <Group gap="xs">
          <Badge variant="dot" color={model.active ? 'green' : 'gray'}>
            {model.active ? 'active' : 'inactive'}
          </Badge>
          <Badge variant="dot" color={model.available ? 'green' : 'orange'}>
            {model.available
              ? 'available'
              : `unavailable: ${model.unavailable_reason ? availabilityText[model.unavailable_reason] : '—'}`}
          </Badge>
          {isAdmin && <ActiveButton model={model} />}
        </Group>
      </Group>
      {isAdmin ? (
        <Anchor
          component={Link}
          to={`/audit?subject_id=${encodeURIComponent(model.key)}`}
          size="sm"
        >
          Who changed this model, and why (audit log)
        </Anchor>
      ) : (
        <Text c="dimmed" size="sm">
          Only administrators change models and prices.
        </Text>
      )}
      {model.routes.length > 1 && (
        <Text size="sm">
          Failover:{' '}
          {model.routes
            .slice(1)
            .map((route) => route.provider)
            .join(', ')}{' '}
          after the first provider (set by migrations).
        </Text>
      )}
      {/* A save answers with the model, and each form starts again from that answer. */}
      <DetailsCard model={model} isAdmin={isAdmin} />
      <PricesCard model={model} isAdmin={isAdmin} />
    </Stack>
  );
}

const emptyDetails: DetailsDraft = {
  name: '',
  description: '',
  provider: '',
  provider_model: '',
  provider_edit_model: '',
  max_prompt_length: 2000,
  max_references: 0,
  typical_seconds: '',
  sort_order: 0,
  parameters: [],
};

/** Adds a model with its first prices; administrators only. */
export function NewModelPage() {
  const api = useApi();
  const isAdmin = useIsAdmin();
  const navigate = useNavigate();
  const queries = useQueryClient();
  const [key, setKey] = useState('');
  const [kind, setKind] = useState<'image' | 'tool'>('image');
  const [active, setActive] = useState(true);
  const [draft, setDraft] = useState<DetailsDraft>(emptyDetails);
  const [prices, setPrices] = useState<PriceDraft[]>([{ conditions: {}, credits: '' }]);
  const [reason, setReason] = useState('');
  const create = useMutation({
    mutationFn: async () => {
      const details = detailsBody(draft);
      return dataOf(
        await api.POST('/api/v1/admin/models', {
          body: {
            ...details,
            key,
            kind,
            active,
            prices: pricesBody(prices),
            ...(reason.trim() === '' ? {} : { reason: reason.trim() }),
          },
        }),
      );
    },
    onSuccess: async (model) => {
      await queries.invalidateQueries({ queryKey: ['models'] });
      await queries.invalidateQueries({ queryKey: ['audit'] });
      void navigate(`/models/${model.key}`);
    },
  });
  const errors = fieldErrors(create.error);
  if (!isAdmin) {
    return <Alert color="gray">Only administrators add models.</Alert>;
  }
  return (
    <form
      noValidate
      onSubmit={(event) => {
        event.preventDefault();
        create.mutate();
      }}
    >
      <Stack>
        <Anchor component={Link} to="/models" size="sm">
          ← Models and prices
        </Anchor>
        <Title order={2}>New model</Title>
        <Card withBorder component="section" aria-label="Details">
          <Stack>
            <SimpleGrid cols={{ base: 1, sm: 2 }}>
              <TextInput
                label="Key"
                description="Our stable name: lower case, digits, . _ -"
                value={key}
                maxLength={bounds.key.maxLength}
                pattern={bounds.key.pattern}
                required
                error={
                  errors.of('body.key') ??
                  (create.error instanceof ApiError && create.error.code === 'model_exists'
                    ? create.error.message
                    : undefined)
                }
                onChange={(event) => setKey(event.currentTarget.value)}
              />
              <Stack gap={4}>
                <Text size="sm" fw={500} id="kind-label">
                  Kind
                </Text>
                <SegmentedControl
                  aria-labelledby="kind-label"
                  value={kind}
                  onChange={(value) => setKind(value === 'tool' ? 'tool' : 'image')}
                  data={[
                    { value: 'image', label: 'Image (from a prompt)' },
                    { value: 'tool', label: 'Tool (on one image)' },
                  ]}
                />
              </Stack>
            </SimpleGrid>
            <DetailsFields
              draft={draft}
              onChange={setDraft}
              disabled={false}
              error={create.error}
            />
            <Switch
              label="Active: offered to users at once"
              checked={active}
              onChange={(event) => setActive(event.currentTarget.checked)}
            />
          </Stack>
        </Card>
        <Card withBorder component="section" aria-labelledby="new-prices-title">
          <Stack>
            <Title order={3} size="h4" id="new-prices-title">
              Prices
            </Title>
            <PricesEditor
              prices={prices}
              parameters={draft.parameters.filter((parameter) => parameter.name !== '')}
              onChange={setPrices}
              disabled={false}
              error={create.error}
            />
          </Stack>
        </Card>
        <ReasonField value={reason} onChange={setReason} />
        <FormError error={create.error} fields={[...detailFields, 'body.key', 'body.prices']} />
        <Group justify="flex-end">
          <Button type="submit" loading={create.isPending}>
            Add the model
          </Button>
        </Group>
      </Stack>
    </form>
  );
}
