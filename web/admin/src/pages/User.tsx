import {
  Alert,
  Anchor,
  Badge,
  Button,
  Card,
  Group,
  Image,
  Loader,
  Modal,
  NumberInput,
  SimpleGrid,
  Stack,
  Table,
  Text,
  Textarea,
  Title,
} from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, type ReactNode, useState } from 'react';
import { Link, useParams } from 'react-router';
import { dataOf, type Ok } from '../../../shared/api.ts';
import { useApi, useAuth } from '../auth.tsx';
import { displayName, formatCredits, formatDateTime, formatSigned } from '../format.ts';
import { ReasonDialog } from '../ReasonDialog.tsx';
import { statusColor } from './Generations.tsx';

type AdminUser = Ok<'/api/v1/admin/users/{telegram_id}', 'get'>;

function Fact({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div>
      <Text size="xs" c="dimmed">
        {label}
      </Text>
      <Text component="div">{children}</Text>
    </div>
  );
}

export function UserPage() {
  const api = useApi();
  const telegramId = Number(useParams().telegramId);
  const user = useQuery({
    queryKey: ['user', telegramId],
    queryFn: async () =>
      dataOf(
        await api.GET('/api/v1/admin/users/{telegram_id}', {
          params: { path: { telegram_id: telegramId } },
        }),
      ),
  });

  if (user.error) {
    return (
      <Alert color="red" role="alert" title="No such user">
        {user.error.message}
      </Alert>
    );
  }
  if (!user.data) return <Loader aria-label="Loading" />;
  const data = user.data;
  return (
    <Stack>
      <Anchor component={Link} to="/users" size="sm">
        ← Users
      </Anchor>
      <Group justify="space-between" align="flex-start">
        <div>
          <Title order={2}>{displayName(data)}</Title>
          <Text c="dimmed" size="sm">
            {data.username ? `@${data.username} · ` : ''}
            {data.telegram_id}
          </Text>
        </div>
        <Group gap={4}>
          {data.banned && <Badge color="red">banned</Badge>}
          {data.blocked_at && <Badge color="gray">blocked the bot</Badge>}
          {data.is_premium && <Badge color="grape">premium</Badge>}
        </Group>
      </Group>
      <SimpleGrid cols={{ base: 2, sm: 4 }}>
        <Fact label="Balance">
          <span data-testid="balance">{formatCredits(data.balance)}</span> credits
        </Fact>
        <Fact label="Free generations">
          {data.trial.remaining} of {data.trial.limit} left
        </Fact>
        <Fact label="Referrals">{data.referrals}</Fact>
        <Fact label="Referred by">
          {data.referred_by === null ? (
            '—'
          ) : (
            <Anchor component={Link} to={`/users/${data.referred_by}`}>
              {data.referred_by}
            </Anchor>
          )}
        </Fact>
        <Fact label="Joined">{formatDateTime(data.created_at)}</Fact>
        <Fact label="Last seen">{formatDateTime(data.last_seen_at)}</Fact>
        <Fact label="Language">{data.language ?? data.language_code ?? '—'}</Fact>
        <Fact label="Ban">{data.banned ? (data.banned.reason ?? 'no reason given') : '—'}</Fact>
      </SimpleGrid>
      <CreditAdjustment user={data} />
      <BanControl user={data} />
      <Generations telegramId={data.telegram_id} generations={data.recent.generations} />
      <Payments payments={data.recent.payments} />
      <Ledger entries={data.recent.ledger} />
    </Stack>
  );
}

/** Gives or takes credits: the operator states the amount and why, then confirms both. */
function CreditAdjustment({ user }: { user: AdminUser }) {
  const api = useApi();
  const queries = useQueryClient();
  const [amount, setAmount] = useState<number | ''>('');
  const [reason, setReason] = useState('');
  const [confirming, setConfirming] = useState(false);
  // One key per adjustment the operator means: a retry after a lost answer is not a second one.
  const [idempotencyKey, setIdempotencyKey] = useState(() => crypto.randomUUID());

  const adjust = useMutation({
    mutationFn: async () =>
      dataOf(
        await api.POST('/api/v1/admin/users/{telegram_id}/credits', {
          params: {
            path: { telegram_id: user.telegram_id },
            header: { 'idempotency-key': idempotencyKey },
          },
          body: { amount: Number(amount), reason: reason.trim() },
        }),
      ),
    onSuccess: async () => {
      setConfirming(false);
      setAmount('');
      setReason('');
      setIdempotencyKey(crypto.randomUUID());
      await queries.invalidateQueries({ queryKey: ['user', user.telegram_id] });
      await queries.invalidateQueries({ queryKey: ['users'] });
      await queries.invalidateQueries({ queryKey: ['audit'] });
    },
  });

  const valid = typeof amount === 'number' && amount !== 0 && reason.trim().length > 0;
  function review(event: FormEvent) {
    event.preventDefault();
    if (valid) {
      adjust.reset();
      setConfirming(true);
    }
  }

  return (
    <Card withBorder>
      <form onSubmit={review}>
        <Stack>
          <Title order={3} size="h4">
            Adjust credits
          </Title>
          {adjust.isSuccess && !confirming && (
            <Alert color="green" role="status">
              Done: {formatSigned(adjust.data.entry.amount)} credits, balance now{' '}
              {formatCredits(adjust.data.entry.balance_after)}.
            </Alert>
          )}
          <Group grow align="flex-start" wrap="wrap">
            <NumberInput
              label="Credits (negative takes)"
              value={amount}
              onChange={(value) => setAmount(typeof value === 'number' ? value : '')}
              allowDecimal={false}
              required
            />
            <Textarea
              label="Reason"
              value={reason}
              onChange={(event) => setReason(event.currentTarget.value)}
              autosize
              minRows={1}
              maxLength={500}
              required
            />
          </Group>
          <Group>
            <Button type="submit" disabled={!valid}>
              Review
            </Button>
          </Group>
        </Stack>
      </form>
      <Modal
        opened={confirming}
        onClose={() => setConfirming(false)}
        title="Confirm the adjustment"
        centered
      >
        <Stack>
          <Text>
            {typeof amount === 'number' && amount > 0 ? 'Give' : 'Take'}{' '}
            <strong>{typeof amount === 'number' ? formatCredits(Math.abs(amount)) : ''}</strong>{' '}
            credits {typeof amount === 'number' && amount > 0 ? 'to' : 'from'}{' '}
            <strong>{displayName(user)}</strong> (balance {formatCredits(user.balance)} →{' '}
            {formatCredits(user.balance + Number(amount))}).
          </Text>
          <Text size="sm">Reason: {reason.trim()}</Text>
          {adjust.error && (
            <Alert color="red" role="alert">
              {adjust.error.message}
            </Alert>
          )}
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setConfirming(false)}>
              Cancel
            </Button>
            <Button color="red" loading={adjust.isPending} onClick={() => adjust.mutate()}>
              Confirm
            </Button>
          </Group>
        </Stack>
      </Modal>
    </Card>
  );
}

/**
 * Bans a user (the reason is what the bot tells them) or lifts the ban, after the operator
 * confirms it. Administrators only: support operators do not see it.
 */
function BanControl({ user }: { user: AdminUser }) {
  const api = useApi();
  const { me } = useAuth();
  const queries = useQueryClient();
  const [confirming, setConfirming] = useState(false);
  const [reason, setReason] = useState('');
  const [idempotencyKey, setIdempotencyKey] = useState(() => crypto.randomUUID());
  const banned = user.banned !== null;

  const change = useMutation({
    mutationFn: async () => {
      const params = {
        path: { telegram_id: user.telegram_id },
        header: { 'idempotency-key': idempotencyKey },
      };
      const why = reason.trim();
      if (banned) {
        return dataOf(
          await api.POST('/api/v1/admin/users/{telegram_id}/unban', {
            params,
            body: why ? { reason: why } : {},
          }),
        );
      }
      return dataOf(
        await api.POST('/api/v1/admin/users/{telegram_id}/ban', { params, body: { reason: why } }),
      );
    },
    onSuccess: async () => {
      setConfirming(false);
      setReason('');
      setIdempotencyKey(crypto.randomUUID());
      await queries.invalidateQueries({ queryKey: ['user', user.telegram_id] });
      await queries.invalidateQueries({ queryKey: ['users'] });
      await queries.invalidateQueries({ queryKey: ['audit'] });
    },
  });

  const role = me ? me.role : null;
  if (role !== 'admin') return null;
  const reasonNeeded = !banned;
  return (
    <Card withBorder>
      <Group justify="space-between">
        <div>
          <Title order={3} size="h4">
            {banned ? 'Banned' : 'Ban'}
          </Title>
          <Text size="sm" c="dimmed">
            {banned
              ? `Since ${formatDateTime(user.banned?.since ?? null)}: no quotes or generations.`
              : 'A banned user can no longer quote or generate; payments still work.'}
          </Text>
        </div>
        <Button
          color={banned ? 'blue' : 'red'}
          variant="light"
          onClick={() => {
            change.reset();
            setConfirming(true);
          }}
        >
          {banned ? 'Lift the ban' : 'Ban user'}
        </Button>
      </Group>
      <ReasonDialog
        opened={confirming}
        onClose={() => setConfirming(false)}
        title={banned ? 'Lift the ban' : 'Ban this user'}
        reasonLabel={reasonNeeded ? 'Reason (the bot shows it to the user)' : 'Reason (optional)'}
        reason={reason}
        onReason={setReason}
        reasonRequired={reasonNeeded}
        error={change.error}
        pending={change.isPending}
        cancelLabel="Cancel"
        confirmLabel={banned ? 'Lift the ban' : 'Ban'}
        confirmColor={banned ? 'blue' : 'red'}
        onConfirm={() => change.mutate()}
      >
        <Text>
          {banned ? 'Lift the ban on ' : 'Ban '}
          <strong>{displayName(user)}</strong>?
        </Text>
      </ReasonDialog>
    </Card>
  );
}

const THUMBNAIL_PX = 48;

/** The user's latest generations, each with its first image; the Generations page has the rest. */
function Generations({
  telegramId,
  generations,
}: {
  telegramId: number;
  generations: AdminUser['recent']['generations'];
}) {
  return (
    <Stack gap="xs">
      <Group justify="space-between">
        <Title order={3} size="h4">
          Recent generations
        </Title>
        {generations.length > 0 && (
          <Anchor component={Link} to={`/generations?user=${telegramId}`} size="sm">
            All generations of this user
          </Anchor>
        )}
      </Group>
      {generations.length === 0 ? (
        <Text c="dimmed">No generations yet.</Text>
      ) : (
        <Table.ScrollContainer minWidth={560}>
          <Table striped verticalSpacing="xs" aria-label="Recent generations">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Image</Table.Th>
                <Table.Th>When</Table.Th>
                <Table.Th>Model</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th>Prompt</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {generations.map((generation) => {
                const thumbnail = generation.results[0];
                return (
                  <Table.Tr key={generation.id} data-testid="user-generation">
                    <Table.Td>
                      {thumbnail ? (
                        <Image
                          src={thumbnail.url}
                          alt={generation.prompt}
                          width={THUMBNAIL_PX}
                          height={THUMBNAIL_PX}
                          w={THUMBNAIL_PX}
                          h={THUMBNAIL_PX}
                          radius="sm"
                          fit="cover"
                          loading="lazy"
                        />
                      ) : (
                        <Text size="xs" c="dimmed">
                          no image
                        </Text>
                      )}
                    </Table.Td>
                    <Table.Td style={{ whiteSpace: 'nowrap' }}>
                      {formatDateTime(generation.created_at)}
                    </Table.Td>
                    <Table.Td>{generation.model}</Table.Td>
                    <Table.Td>
                      <Badge color={statusColor[generation.status]} variant="dot">
                        {generation.status}
                      </Badge>
                    </Table.Td>
                    <Table.Td maw={280}>
                      <Text size="sm" lineClamp={2}>
                        {generation.prompt}
                      </Text>
                    </Table.Td>
                  </Table.Tr>
                );
              })}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </Stack>
  );
}

function Payments({ payments }: { payments: AdminUser['recent']['payments'] }) {
  return (
    <Stack gap="xs">
      <Title order={3} size="h4">
        Payments
      </Title>
      {payments.length === 0 ? (
        <Text c="dimmed">No payments yet.</Text>
      ) : (
        <Table.ScrollContainer minWidth={560}>
          <Table striped aria-label="Payments">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>When</Table.Th>
                <Table.Th>Package</Table.Th>
                <Table.Th ta="right">Stars</Table.Th>
                <Table.Th ta="right">Credits</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th>Refunded</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {payments.map((payment) => (
                <Table.Tr
                  key={payment.id}
                  data-testid="user-payment"
                  data-charge={payment.telegram_payment_charge_id}
                >
                  <Table.Td style={{ whiteSpace: 'nowrap' }}>
                    {formatDateTime(payment.created_at)}
                  </Table.Td>
                  <Table.Td>{payment.package_id}</Table.Td>
                  <Table.Td ta="right">{formatCredits(payment.stars)}</Table.Td>
                  <Table.Td ta="right">{formatCredits(payment.credits)}</Table.Td>
                  <Table.Td>
                    <Badge color={payment.status === 'paid' ? 'green' : 'orange'} variant="dot">
                      {payment.status}
                    </Badge>
                  </Table.Td>
                  <Table.Td>
                    {payment.refunded_at === null
                      ? '—'
                      : `${formatDateTime(payment.refunded_at)}${
                          payment.refund_shortfall
                            ? ` · shortfall ${formatCredits(payment.refund_shortfall)}`
                            : ''
                        }`}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </Stack>
  );
}

function Ledger({ entries }: { entries: AdminUser['recent']['ledger'] }) {
  return (
    <Stack gap="xs">
      <Title order={3} size="h4">
        Latest ledger entries
      </Title>
      {entries.length === 0 ? (
        <Text c="dimmed">No credits moved yet.</Text>
      ) : (
        <Table.ScrollContainer minWidth={560}>
          <Table striped>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>When</Table.Th>
                <Table.Th>Kind</Table.Th>
                <Table.Th ta="right">Amount</Table.Th>
                <Table.Th ta="right">Balance</Table.Th>
                <Table.Th>Reason</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {entries.map((entry) => (
                <Table.Tr key={entry.id}>
                  <Table.Td>{formatDateTime(entry.created_at)}</Table.Td>
                  <Table.Td>{entry.kind}</Table.Td>
                  <Table.Td ta="right">{formatSigned(entry.amount)}</Table.Td>
                  <Table.Td ta="right">{formatCredits(entry.balance_after)}</Table.Td>
                  <Table.Td>{entry.reason ?? '—'}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </Stack>
  );
}
