import {
  Alert,
  Anchor,
  Badge,
  Button,
  Card,
  Code,
  Group,
  Select,
  SimpleGrid,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import {
  keepPreviousData,
  useInfiniteQuery,
  useMutation,
  useQueryClient,
} from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'react-router';
import type { paths } from '../../../../src/api-client/schema.ts';
import { dataOf, type Ok } from '../../../shared/api.ts';
import { useApi, useAuth } from '../auth.tsx';
import { dayRange, formatCredits, formatDateTime } from '../format.ts';
import { ReasonDialog } from '../ReasonDialog.tsx';

const PAGE_SIZE = 50;

const text = {
  title: 'Payments',
  totals: 'Totals of the filter',
  count: 'Payments',
  stars: 'Stars',
  credits: 'Credits sold',
  refundedCount: 'Refunded',
  refundedStars: 'Stars refunded',
  status: 'Status',
  anyStatus: 'Any status',
  user: 'User',
  userPlaceholder: 'a telegram id',
  from: 'From',
  to: 'Until',
  when: 'When',
  package: 'Package',
  charge: 'Charge id',
  shortfall: 'Shortfall',
  refund: 'Refund',
  refundTitle: 'Refund this payment',
  refundQuestion: (stars: string, credits: string) =>
    `Return ${stars} Stars through Telegram and take back ${credits} credits (as far as the balance allows)?`,
  reason: 'Reason',
  cancel: 'Cancel',
  refunded: (shortfall: number) =>
    shortfall > 0
      ? `Refunded; ${formatCredits(shortfall)} credits could not be taken back.`
      : 'Refunded; every credit taken back.',
  nothing: 'No payments match.',
  older: 'Older payments',
  reconciliation: 'Reconciliation with Telegram',
  lastRun: 'Last run',
  reconciledUntil: 'Reconciled up to',
  kind: 'Correction',
  noCorrections: 'Reconciliation has corrected nothing.',
  olderCorrections: 'Older corrections',
} as const;

const correctionKinds = {
  payment_credited: 'missing payment credited',
  refund_applied: 'refund applied',
  payment_unmatched: 'unmatched payment',
} as const;

type PaymentsQuery = paths['/api/v1/admin/payments']['get']['parameters']['query'];
type Payment = Ok<'/api/v1/admin/payments', 'get'>['payments'][number];
type PaymentStatus = Payment['status'];

/** Refunds a Stars payment through Telegram, after the operator confirms it with a reason. */
function RefundButton({
  payment,
  onRefunded,
}: {
  payment: Payment;
  onRefunded: (message: string) => void;
}) {
  const api = useApi();
  const queries = useQueryClient();
  const [confirming, setConfirming] = useState(false);
  const [reason, setReason] = useState('');
  const [idempotencyKey, setIdempotencyKey] = useState(() => crypto.randomUUID());
  const refund = useMutation({
    mutationFn: async () =>
      dataOf(
        await api.POST('/api/v1/admin/payments/{charge_id}/refund', {
          params: {
            path: { charge_id: payment.telegram_payment_charge_id },
            header: { 'idempotency-key': idempotencyKey },
          },
          body: { reason: reason.trim() },
        }),
      ),
    onSuccess: async (answer) => {
      setConfirming(false);
      setReason('');
      setIdempotencyKey(crypto.randomUUID());
      onRefunded(text.refunded(answer.refund.shortfall));
      await queries.invalidateQueries({ queryKey: ['payments'] });
      await queries.invalidateQueries({ queryKey: ['audit'] });
      await queries.invalidateQueries({ queryKey: ['user', payment.telegram_id] });
    },
  });
  return (
    <>
      <Button
        size="xs"
        variant="light"
        color="red"
        onClick={() => {
          refund.reset();
          setConfirming(true);
        }}
      >
        {text.refund}
      </Button>
      <ReasonDialog
        opened={confirming}
        onClose={() => setConfirming(false)}
        title={text.refundTitle}
        reasonLabel={text.reason}
        reason={reason}
        onReason={setReason}
        error={refund.error}
        pending={refund.isPending}
        cancelLabel={text.cancel}
        confirmLabel={text.refund}
        confirmColor="red"
        onConfirm={() => refund.mutate()}
      >
        <Text>
          {text.refundQuestion(formatCredits(payment.stars), formatCredits(payment.credits))}
        </Text>
      </ReasonDialog>
    </>
  );
}

function Figure({ label, value }: { label: string; value: number }) {
  return (
    <div data-testid={`total-${label}`}>
      <Text size="xs" c="dimmed">
        {label}
      </Text>
      <Text fw={600}>{formatCredits(value)}</Text>
    </div>
  );
}

/** What reconciliation with Telegram's Star transactions corrected, and how far it got. */
function Reconciliation() {
  const api = useApi();
  const report = useInfiniteQuery({
    queryKey: ['reconciliation'],
    initialPageParam: null as string | null,
    queryFn: async ({ pageParam }) =>
      dataOf(
        await api.GET('/api/v1/admin/payments/reconciliation', {
          params: {
            query: pageParam ? { limit: PAGE_SIZE, cursor: pageParam } : { limit: PAGE_SIZE },
          },
        }),
      ),
    getNextPageParam: (page) => page.next_cursor,
  });
  const first = report.data?.pages[0];
  const corrections = report.data?.pages.flatMap((page) => page.corrections) ?? [];
  return (
    <Card withBorder>
      <Stack gap="sm">
        <Title order={3} size="h4">
          {text.reconciliation}
        </Title>
        {report.error && (
          <Alert color="red" role="alert">
            {report.error.message}
          </Alert>
        )}
        {first && (
          <Group gap="xl">
            <Text size="sm" data-testid="reconciliation-last-run">
              {text.lastRun}: {formatDateTime(first.last_run_at)}
            </Text>
            <Text size="sm">
              {text.reconciledUntil}: {formatDateTime(first.reconciled_until)}
            </Text>
          </Group>
        )}
        {corrections.length > 0 && (
          <Table.ScrollContainer minWidth={600}>
            <Table striped>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>{text.when}</Table.Th>
                  <Table.Th>{text.kind}</Table.Th>
                  <Table.Th>{text.user}</Table.Th>
                  <Table.Th>{text.stars}</Table.Th>
                  <Table.Th>{text.charge}</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {corrections.map((correction) => (
                  <Table.Tr key={correction.id} data-testid="correction">
                    <Table.Td style={{ whiteSpace: 'nowrap' }}>
                      {formatDateTime(correction.created_at)}
                    </Table.Td>
                    <Table.Td>{correctionKinds[correction.kind]}</Table.Td>
                    <Table.Td>{correction.telegram_id ?? '—'}</Table.Td>
                    <Table.Td>{formatCredits(correction.stars)}</Table.Td>
                    <Table.Td>
                      <Code>{correction.telegram_payment_charge_id}</Code>
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        )}
        {corrections.length === 0 && report.isSuccess && (
          <Text size="sm" c="dimmed">
            {text.noCorrections}
          </Text>
        )}
        {report.hasNextPage && (
          <Button
            variant="default"
            onClick={() => void report.fetchNextPage()}
            loading={report.isFetchingNextPage}
          >
            {text.olderCorrections}
          </Button>
        )}
      </Stack>
    </Card>
  );
}

export function PaymentsPage() {
  const api = useApi();
  const { me } = useAuth();
  const isAdmin = me !== null && me !== false && me.role === 'admin';
  const [fields, setFields] = useState({ user: '', from: '', to: '' });
  const [status, setStatus] = useState<PaymentStatus | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [typed] = useDebouncedValue(fields, 300);
  const filters = { ...typed, status };

  const payments = useInfiniteQuery({
    queryKey: ['payments', filters],
    initialPageParam: null as string | null,
    queryFn: async ({ pageParam }) => {
      const query: PaymentsQuery = { limit: PAGE_SIZE, ...dayRange(filters.from, filters.to) };
      if (filters.status) query.status = filters.status;
      if (/^\d+$/.test(filters.user.trim())) query.user = Number(filters.user.trim());
      if (pageParam) query.cursor = pageParam;
      return dataOf(await api.GET('/api/v1/admin/payments', { params: { query } }));
    },
    getNextPageParam: (page) => page.next_cursor,
    placeholderData: keepPreviousData,
  });

  const totals = payments.data?.pages[0]?.totals;
  const rows = payments.data?.pages.flatMap((page) => page.payments) ?? [];
  const field = (name: keyof typeof fields, label: string, placeholder = '', type = 'text') => (
    <TextInput
      label={label}
      placeholder={placeholder}
      type={type}
      value={fields[name]}
      onChange={(event) => {
        const value = event.currentTarget.value;
        setFields((current) => ({ ...current, [name]: value }));
      }}
    />
  );

  return (
    <Stack>
      <Title order={2}>{text.title}</Title>
      <SimpleGrid cols={{ base: 1, xs: 2, md: 4 }}>
        <Select
          label={text.status}
          placeholder={text.anyStatus}
          data={['paid', 'refunded']}
          value={status}
          onChange={(value) => setStatus(value as PaymentStatus | null)}
          clearable
        />
        {field('user', text.user, text.userPlaceholder)}
        {field('from', text.from, '', 'date')}
        {field('to', text.to, '', 'date')}
      </SimpleGrid>
      {totals && (
        <Card withBorder>
          <Title order={3} size="h5" mb="xs">
            {text.totals}
          </Title>
          <SimpleGrid cols={{ base: 2, sm: 5 }}>
            <Figure label={text.count} value={totals.count} />
            <Figure label={text.stars} value={totals.stars} />
            <Figure label={text.credits} value={totals.credits} />
            <Figure label={text.refundedCount} value={totals.refunded} />
            <Figure label={text.refundedStars} value={totals.refunded_stars} />
          </SimpleGrid>
        </Card>
      )}
      {notice && (
        <Alert color="green" role="status" withCloseButton onClose={() => setNotice(null)}>
          {notice}
        </Alert>
      )}
      {payments.error && (
        <Alert color="red" role="alert">
          {payments.error.message}
        </Alert>
      )}
      <Table.ScrollContainer minWidth={760}>
        <Table striped verticalSpacing="xs">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>{text.when}</Table.Th>
              <Table.Th>{text.user}</Table.Th>
              <Table.Th>{text.package}</Table.Th>
              <Table.Th>{text.stars}</Table.Th>
              <Table.Th>{text.credits}</Table.Th>
              <Table.Th>{text.status}</Table.Th>
              <Table.Th>{text.charge}</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {rows.map((payment) => (
              <Table.Tr
                key={payment.payment_id}
                data-testid="payment"
                data-charge={payment.telegram_payment_charge_id}
              >
                <Table.Td style={{ whiteSpace: 'nowrap' }}>
                  {formatDateTime(payment.created_at)}
                </Table.Td>
                <Table.Td>
                  <Anchor component={Link} to={`/users/${payment.telegram_id}`}>
                    {payment.telegram_id}
                  </Anchor>
                </Table.Td>
                <Table.Td>{payment.package_id}</Table.Td>
                <Table.Td>{formatCredits(payment.stars)}</Table.Td>
                <Table.Td>{formatCredits(payment.credits)}</Table.Td>
                <Table.Td>
                  <Badge color={payment.status === 'paid' ? 'green' : 'orange'} variant="dot">
                    {payment.status}
                  </Badge>
                  {payment.refunded_at && (
                    <Text size="xs" c="dimmed">
                      {formatDateTime(payment.refunded_at)}
                      {payment.refund_shortfall
                        ? ` · ${text.shortfall} ${formatCredits(payment.refund_shortfall)}`
                        : ''}
                    </Text>
                  )}
                </Table.Td>
                <Table.Td maw={200}>
                  <Text size="xs" ff="monospace" truncate="end">
                    {payment.telegram_payment_charge_id}
                  </Text>
                </Table.Td>
                <Table.Td>
                  {isAdmin && payment.status === 'paid' && (
                    <RefundButton payment={payment} onRefunded={setNotice} />
                  )}
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {rows.length === 0 && payments.isSuccess && <Text c="dimmed">{text.nothing}</Text>}
      {payments.hasNextPage && (
        <Button
          variant="default"
          onClick={() => void payments.fetchNextPage()}
          loading={payments.isFetchingNextPage}
        >
          {text.older}
        </Button>
      )}
      <Reconciliation />
    </Stack>
  );
}
