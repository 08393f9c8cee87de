import { Badge, Button, Table, Text } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { dataOf, type Ok } from '../../shared/api.ts';
import { useApi } from './auth.tsx';
import { formatCredits, formatDateTime } from './format.ts';
import { ReasonDialog } from './ReasonDialog.tsx';

/**
 * What the models pages share: the types, what a price applies to, the price history, and
 * activation with a confirmation. The form is in model-form.tsx, loaded only with a model's page.
 */

export type AdminModel = Ok<'/api/v1/admin/models', 'get'>['models'][number];
/** A model as a write answers it: without its availability. */
export type WrittenModel = Ok<'/api/v1/admin/models/{key}', 'patch'>;
export type Parameter = AdminModel['parameters'][number];
export type PriceHistoryEntry = Ok<'/api/v1/admin/models/{key}/prices', 'get'>['prices'][number];

export const availabilityText = {
  no_account: 'no provider account',
  failing: 'its providers are failing',
  low_balance: 'provider balance below the minimum',
} as const;

/** "any" or "size = large, quality = hd": what a price applies to. */
export function conditionsText(conditions: Record<string, string>): string {
  const entries = Object.entries(conditions);
  return entries.length === 0
    ? 'any parameters'
    : entries.map(([name, value]) => `${name} = ${value}`).join(', ');
}

/** The price with every parameter at its default (what the bot quotes first), if any. */
export function defaultPrice(model: AdminModel): number | null {
  const defaults = Object.fromEntries(model.parameters.map((p) => [p.name, p.default]));
  let best: { credits: number; specificity: number } | null = null;
  for (const price of model.prices) {
    const conditions = Object.entries(price.conditions);
    if (!conditions.every(([name, value]) => defaults[name] === value)) continue;
    if (best === null || conditions.length > best.specificity) {
      best = { credits: price.credits, specificity: conditions.length };
    }
  }
  return best?.credits ?? null;
}

/** Every price a model had, newest first, the current ones marked. */
export function PriceHistory({ entries }: { entries: readonly PriceHistoryEntry[] }) {
  return (
    <Table.ScrollContainer minWidth={440}>
      <Table striped verticalSpacing="xs">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Credits</Table.Th>
            <Table.Th>Applies to</Table.Th>
            <Table.Th>From</Table.Th>
            <Table.Th>Until</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {entries.map((entry) => (
            <Table.Tr key={entry.id} data-testid="price-history-entry">
              <Table.Td>{formatCredits(entry.credits)}</Table.Td>
              <Table.Td>{conditionsText(entry.conditions)}</Table.Td>
              <Table.Td>{formatDateTime(entry.valid_from)}</Table.Td>
              <Table.Td>
                {entry.valid_to === null ? (
                  <Badge variant="dot" color="green">
                    current
                  </Badge>
                ) : (
                  formatDateTime(entry.valid_to)
                )}
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

/** Takes a model out of the catalog users see, or puts it back, after a confirmation. */
export function ActiveButton({ model }: { model: AdminModel }) {
  const api = useApi();
  const queries = useQueryClient();
  const [confirming, setConfirming] = useState(false);
  const [reason, setReason] = useState('');
  const deactivating = model.active;
  const change = useMutation({
    mutationFn: async () =>
      dataOf(
        await api.PATCH('/api/v1/admin/models/{key}', {
          params: { path: { key: model.key } },
          body: {
            active: !model.active,
            ...(reason.trim() === '' ? {} : { reason: reason.trim() }),
          },
        }),
      ),
    onSuccess: async () => {
      setConfirming(false);
      setReason('');
      await queries.invalidateQueries({ queryKey: ['models'] });
      await queries.invalidateQueries({ queryKey: ['audit'] });
    },
  });
  const label = deactivating ? 'Deactivate' : 'Activate';
  return (
    <>
      <Button
        size="xs"
        // Green on light green is below WCAG AA's contrast; activating needs no colour.
        {...(deactivating ? { variant: 'light', color: 'red' } : { variant: 'default' })}
        aria-label={`${label} ${model.name}`}
        onClick={() => {
          change.reset();
          setConfirming(true);
        }}
      >
        {label}
      </Button>
      <ReasonDialog
        opened={confirming}
        onClose={() => setConfirming(false)}
        title={deactivating ? 'Deactivate this model' : 'Activate this model'}
        reasonLabel="Reason"
        reason={reason}
        onReason={setReason}
        reasonRequired={deactivating}
        error={change.error}
        pending={change.isPending}
        cancelLabel="Cancel"
        confirmLabel={label}
        {...(deactivating ? { confirmColor: 'red' } : {})}
        onConfirm={() => change.mutate()}
      >
        <Text>
          {deactivating
            ? `Users will no longer be offered ${model.name}; generations already accepted finish at their price.`
            : `Users will be offered ${model.name} again, at its current prices.`}
        </Text>
      </ReasonDialog>
    </>
  );
}
