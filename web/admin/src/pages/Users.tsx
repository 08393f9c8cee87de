import {
  Alert,
  Anchor,
  Badge,
  Button,
  Chip,
  Group,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { keepPreviousData, useInfiniteQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'react-router';
import { dataOf } from '../../../shared/api.ts';
import { useApi } from '../auth.tsx';
import { displayName, formatCredits, formatDateTime } from '../format.ts';
import { USER_FILTERS } from '../user-filters.ts';

const PAGE_SIZE = 50;

export function UsersPage() {
  const api = useApi();
  const [search, setSearch] = useState('');
  const [query] = useDebouncedValue(search.trim(), 300);
  const [filters, setFilters] = useState<string[]>([]);

  const users = useInfiniteQuery({
    queryKey: ['users', query, filters],
    initialPageParam: null as string | null,
    queryFn: async ({ pageParam }) =>
      dataOf(
        await api.GET('/api/v1/admin/users', {
          params: {
            query: {
              limit: PAGE_SIZE,
              ...(query ? { query } : {}),
              ...(filters.length > 0 ? { filter: filters.join(',') } : {}),
              ...(pageParam ? { cursor: pageParam } : {}),
            },
          },
        }),
      ),
    getNextPageParam: (page) => page.next_cursor,
    // The table keeps what it shows while a changed search loads, instead of blanking.
    placeholderData: keepPreviousData,
  });

  const rows = users.data?.pages.flatMap((page) => page.items) ?? [];
  const counts = users.data?.pages[0]?.counts;

  return (
    <Stack>
      <Title order={2}>Users</Title>
      <TextInput
        label="Search"
        placeholder="Telegram id, @username or name"
        value={search}
        onChange={(event) => setSearch(event.currentTarget.value)}
        type="search"
      />
      <Chip.Group multiple value={filters} onChange={setFilters}>
        <Group gap="xs" aria-label="Filters" role="group">
          {USER_FILTERS.map((filter) => (
            <Chip key={filter.value} value={filter.value} size="sm">
              {filter.label}
            </Chip>
          ))}
        </Group>
      </Chip.Group>
      {users.error && (
        <Alert color="red" role="alert">
          {users.error.message}
        </Alert>
      )}
      {counts !== undefined && (
        <Text size="sm" c="dimmed" data-testid="users-total">
          {counts.capped
            ? `${formatCredits(counts.total)}+ users`
            : counts.total === 1
              ? '1 user'
              : `${formatCredits(counts.total)} users`}
        </Text>
      )}
      <Table.ScrollContainer minWidth={560}>
        <Table striped highlightOnHover>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>User</Table.Th>
              <Table.Th>Telegram id</Table.Th>
              <Table.Th ta="right">Balance</Table.Th>
              <Table.Th>Last seen</Table.Th>
              <Table.Th>State</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {rows.map((user) => (
              <Table.Tr key={user.telegram_id}>
                <Table.Td>
                  <Anchor component={Link} to={`/users/${user.telegram_id}`}>
                    {displayName(user)}
                  </Anchor>
                  {user.username && (
                    <Text size="xs" c="dimmed">
                      @{user.username}
                    </Text>
                  )}
                </Table.Td>
                <Table.Td>{user.telegram_id}</Table.Td>
                <Table.Td ta="right">{formatCredits(user.balance)}</Table.Td>
                <Table.Td>{formatDateTime(user.last_seen_at)}</Table.Td>
                <Table.Td>
                  <Group gap={4}>
                    {user.banned && <Badge color="red">banned</Badge>}
                    {user.blocked && <Badge color="gray">blocked bot</Badge>}
                  </Group>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {users.hasNextPage && (
        <Button
          variant="default"
          onClick={() => void users.fetchNextPage()}
          loading={users.isFetchingNextPage}
        >
          More users
        </Button>
      )}
    </Stack>
  );
}
