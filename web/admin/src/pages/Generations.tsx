import {
  Alert,
  Anchor,
  Badge,
  Button,
  Image,
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
import { Link, useSearchParams } from 'react-router';
import type { paths } from '../../../../src/api-client/schema.ts';
import { dataOf, type Ok } from '../../../shared/api.ts';
import { useApi } from '../auth.tsx';
import { dayRange, formatCredits, formatDateTime } from '../format.ts';
import { QueueCard } from '../QueueCard.tsx';
import { ReasonDialog } from '../ReasonDialog.tsx';

const PAGE_SIZE = 50;

const text = {
  title: 'Generations',
  status: 'Status',
  anyStatus: 'Any status',
  model: 'Model',
  modelPlaceholder: 'a model key',
  user: 'User',
  userPlaceholder: 'a telegram id',
  from: 'From',
  to: 'Until',
  when: 'When',
  image: 'Image',
  prompt: 'Prompt',
  paid: 'Paid',
  refunded: 'refunded',
  trial: 'free generation',
  refund: 'Refund',
  refundTitle: 'Refund this generation',
  refundQuestion: (credits: string) => `Give back ${credits} to the user?`,
  reason: 'Reason',
  cancel: 'Cancel',
  nothing: 'No generations match.',
  older: 'Older generations',
  noImage: 'no image',
} as const;

const statuses = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
type Status = (typeof statuses)[number];
export const statusColor: Record<Status, string> = {
  queued: 'gray',
  running: 'blue',
  succeeded: 'green',
  failed: 'red',
  cancelled: 'yellow',
};

type GenerationsQuery = paths['/api/v1/admin/generations']['get']['parameters']['query'];
type AdminGeneration = Ok<'/api/v1/admin/generations', 'get'>['generations'][number];

/** Gives back what a succeeded generation cost, after the operator confirms it with a reason. */
function RefundButton({ generation }: { generation: AdminGeneration }) {
  const api = useApi();
  const queries = useQueryClient();
  const [confirming, setConfirming] = useState(false);
  const [reason, setReason] = useState('');
  const [idempotencyKey, setIdempotencyKey] = useState(() => crypto.randomUUID());
  const refund = useMutation({
    mutationFn: async () =>
      dataOf(
        await api.POST('/api/v1/admin/generations/{id}/refund', {
          params: { path: { id: generation.id }, header: { 'idempotency-key': idempotencyKey } },
          body: { reason: reason.trim() },
        }),
      ),
    onSuccess: async () => {
      setConfirming(false);
      setReason('');
      setIdempotencyKey(crypto.randomUUID());
      await queries.invalidateQueries({ queryKey: ['generations'] });
      await queries.invalidateQueries({ queryKey: ['audit'] });
      await queries.invalidateQueries({ queryKey: ['user', generation.telegram_id] });
    },
  });
  const cost =
    generation.payment.method === 'trial'
      ? text.trial
      : `${formatCredits(generation.payment.credits)} credits`;
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
        <Text>{text.refundQuestion(cost)}</Text>
        <Text size="sm" c="dimmed" lineClamp={2}>
          {generation.prompt}
        </Text>
      </ReasonDialog>
    </>
  );
}

export function GenerationsPage() {
  const api = useApi();
  // `?user=` (the user page links here) starts the list filtered to that user.
  const [search] = useSearchParams();
  const [fields, setFields] = useState(() => ({
    model: '',
    user: search.get('user') ?? '',
    from: '',
    to: '',
  }));
  const [status, setStatus] = useState<Status | null>(null);
  const [typed] = useDebouncedValue(fields, 300);
  const filters = { ...typed, status };

  const generations = useInfiniteQuery({
    queryKey: ['generations', filters],
    initialPageParam: null as string | null,
    queryFn: async ({ pageParam }) => {
      const query: GenerationsQuery = { limit: PAGE_SIZE };
      if (filters.status) query.status = filters.status;
      if (filters.model.trim()) query.model = filters.model.trim();
      if (/^\d+$/.test(filters.user.trim())) query.user = Number(filters.user.trim());
      Object.assign(query, dayRange(filters.from, filters.to));
      if (pageParam) query.cursor = pageParam;
      return dataOf(await api.GET('/api/v1/admin/generations', { params: { query } }));
    },
    getNextPageParam: (page) => page.next_cursor,
    placeholderData: keepPreviousData,
  });

  const rows = generations.data?.pages.flatMap((page) => page.generations) ?? [];
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
      <QueueCard />
      <SimpleGrid cols={{ base: 1, xs: 2, md: 5 }}>
        <Select
          label={text.status}
          placeholder={text.anyStatus}
          data={[...statuses]}
          value={status}
          onChange={(value) => setStatus(value as Status | null)}
          clearable
        />
        {field('model', text.model, text.modelPlaceholder)}
        {field('user', text.user, text.userPlaceholder)}
        {field('from', text.from, '', 'date')}
        {field('to', text.to, '', 'date')}
      </SimpleGrid>
      {generations.error && (
        <Alert color="red" role="alert">
          {generations.error.message}
        </Alert>
      )}
      <Table.ScrollContainer minWidth={760}>
        <Table striped verticalSpacing="xs">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>{text.image}</Table.Th>
              <Table.Th>{text.when}</Table.Th>
              <Table.Th>{text.user}</Table.Th>
              <Table.Th>{text.model}</Table.Th>
              <Table.Th>{text.status}</Table.Th>
              <Table.Th>{text.paid}</Table.Th>
              <Table.Th>{text.prompt}</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {rows.map((generation) => {
              const thumbnail = generation.results[0];
              return (
                <Table.Tr key={generation.id} data-testid="generation" data-id={generation.id}>
                  <Table.Td>
                    {thumbnail ? (
                      <Image
                        src={thumbnail.url}
                        alt={generation.prompt}
                        w={48}
                        h={48}
                        radius="sm"
                        fit="cover"
                        loading="lazy"
                      />
                    ) : (
                      <Text size="xs" c="dimmed">
                        {text.noImage}
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td style={{ whiteSpace: 'nowrap' }}>
                    {formatDateTime(generation.created_at)}
                  </Table.Td>
                  <Table.Td>
                    <Anchor component={Link} to={`/users/${generation.telegram_id}`}>
                      {generation.telegram_id}
                    </Anchor>
                  </Table.Td>
                  <Table.Td>{generation.model}</Table.Td>
                  <Table.Td>
                    <Badge color={statusColor[generation.status]} variant="dot">
                      {generation.status}
                    </Badge>
                  </Table.Td>
                  <Table.Td>
                    {generation.payment.method === 'trial'
                      ? text.trial
                      : formatCredits(generation.payment.credits)}
                    {generation.payment.refunded && (
                      <Badge ml="xs" color="orange" variant="outline">
                        {text.refunded}
                      </Badge>
                    )}
                  </Table.Td>
                  <Table.Td maw={280}>
                    <Text size="sm" lineClamp={2}>
                      {generation.prompt}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    {generation.status === 'succeeded' && !generation.payment.refunded && (
                      <RefundButton generation={generation} />
                    )}
                  </Table.Td>
                </Table.Tr>
              );
            })}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {rows.length === 0 && generations.isSuccess && <Text c="dimmed">{text.nothing}</Text>}
      {generations.hasNextPage && (
        <Button
          variant="default"
          onClick={() => void generations.fetchNextPage()}
          loading={generations.isFetchingNextPage}
        >
          {text.older}
        </Button>
      )}
    </Stack>
  );
}
