import { Alert, Anchor, Button, Group, Stack, Table, Text, Title } from '@mantine/core';
import { useInfiniteQuery } from '@tanstack/react-query';
import { Link } from 'react-router';
import { dataOf } from '../../../shared/api.ts';
import { useApi, useAuth } from '../auth.tsx';
import { audienceText, type Broadcast, ProgressBar, StatusBadge } from '../broadcast-view.tsx';
import { formatDateTime } from '../format.ts';

const PAGE_SIZE = 50;
/** While one is sending, the list follows its progress. */
const SENDING_REFRESH_MS = 2_000;

function summary(broadcast: Broadcast): string {
  if (broadcast.text !== null) {
    return broadcast.text.length > 80 ? `${broadcast.text.slice(0, 80)}…` : broadcast.text;
  }
  return broadcast.copy
    ? `Copy of message ${broadcast.copy.message_id} from chat ${broadcast.copy.from_chat_id}`
    : '—';
}

export function BroadcastsPage() {
  const api = useApi();
  const { me } = useAuth();
  const isAdmin = me !== null && me !== false && me.role === 'admin';
  const broadcasts = useInfiniteQuery({
    queryKey: ['broadcasts'],
    initialPageParam: null as number | null,
    queryFn: async ({ pageParam }) =>
      dataOf(
        await api.GET('/api/v1/admin/broadcasts', {
          params: {
            query:
              pageParam === null ? { limit: PAGE_SIZE } : { limit: PAGE_SIZE, before: pageParam },
          },
        }),
      ),
    getNextPageParam: (page) =>
      page.items.length < PAGE_SIZE ? null : (page.items.at(-1)?.id ?? null),
    refetchInterval: (query) =>
      query.state.data?.pages.some((page) => page.items.some((item) => item.status === 'running'))
        ? SENDING_REFRESH_MS
        : false,
  });
  const rows = broadcasts.data?.pages.flatMap((page) => page.items) ?? [];

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Broadcasts</Title>
        {isAdmin && (
          <Button component={Link} to="/broadcasts/new">
            New broadcast
          </Button>
        )}
      </Group>
      {broadcasts.error && (
        <Alert color="red" role="alert">
          {broadcasts.error.message}
        </Alert>
      )}
      <Table.ScrollContainer minWidth={720}>
        <Table striped verticalSpacing="xs">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Broadcast</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th w={180}>Progress</Table.Th>
              <Table.Th>Message</Table.Th>
              <Table.Th>Audience</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {rows.map((broadcast) => (
              <Table.Tr key={broadcast.id} data-testid="broadcast" data-id={broadcast.id}>
                <Table.Td style={{ whiteSpace: 'nowrap' }}>
                  <Anchor component={Link} to={`/broadcasts/${broadcast.id}`}>
                    #{broadcast.id}
                  </Anchor>
                  <Text size="xs" c="dimmed">
                    {formatDateTime(broadcast.created_at)}
                  </Text>
                </Table.Td>
                <Table.Td>
                  <StatusBadge status={broadcast.status} />
                </Table.Td>
                <Table.Td>
                  <ProgressBar broadcast={broadcast} size="sm" />
                </Table.Td>
                <Table.Td maw={320}>
                  <Text size="sm" lineClamp={2}>
                    {summary(broadcast)}
                  </Text>
                </Table.Td>
                <Table.Td>
                  <Text size="sm">{audienceText(broadcast.audience)}</Text>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {rows.length === 0 && broadcasts.isSuccess && <Text c="dimmed">No broadcasts yet.</Text>}
      {broadcasts.hasNextPage && (
        <Button
          variant="default"
          onClick={() => void broadcasts.fetchNextPage()}
          loading={broadcasts.isFetchingNextPage}
        >
          Older broadcasts
        </Button>
      )}
    </Stack>
  );
}
