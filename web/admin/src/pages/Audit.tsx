import { Alert, Button, Code, Group, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { keepPreviousData, useInfiniteQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useSearchParams } from 'react-router';
import type { paths } from '../../../../src/api-client/schema.ts';
import { dataOf } from '../../../shared/api.ts';
import { useApi } from '../auth.tsx';
import { formatDateTime } from '../format.ts';

const PAGE_SIZE = 50;

type AuditQuery = paths['/api/v1/admin/audit']['get']['parameters']['query'];

/** A before/after state as one short line. */
function stateText(state: unknown): string {
  return state === null || state === undefined ? '—' : JSON.stringify(state);
}

export function AuditPage() {
  const api = useApi();
  // Other pages link here for one subject's entries (a model's: /audit?subject_id=its-key).
  const [search] = useSearchParams();
  const [fields, setFields] = useState(() => ({
    action: search.get('action') ?? '',
    actor: '',
    subject_id: search.get('subject_id') ?? '',
  }));
  const [filters] = useDebouncedValue(fields, 300);

  const audit = useInfiniteQuery({
    queryKey: ['audit', filters],
    initialPageParam: null as string | null,
    queryFn: async ({ pageParam }) => {
      const query: AuditQuery = { limit: PAGE_SIZE };
      if (filters.action.trim()) query.action = filters.action.trim();
      if (filters.actor.trim()) query.actor = filters.actor.trim();
      if (filters.subject_id.trim()) query.subject_id = filters.subject_id.trim();
      if (pageParam) query.cursor = pageParam;
      return dataOf(await api.GET('/api/v1/admin/audit', { params: { query } }));
    },
    getNextPageParam: (page) => page.next_cursor,
    // The table keeps what it shows while a changed search loads, instead of blanking.
    placeholderData: keepPreviousData,
  });

  const rows = audit.data?.pages.flatMap((page) => page.items) ?? [];
  const field = (name: keyof typeof fields, label: string, placeholder: string) => (
    <TextInput
      label={label}
      placeholder={placeholder}
      value={fields[name]}
      onChange={(event) => {
        const value = event.currentTarget.value;
        setFields((current) => ({ ...current, [name]: value }));
      }}
    />
  );

  return (
    <Stack>
      <Title order={2}>Audit log</Title>
      <Group grow align="flex-end" wrap="wrap">
        {field('action', 'Action', 'user.credits')}
        {field('actor', 'Actor', 'operator:123')}
        {field('subject_id', 'Subject id', 'a telegram id')}
      </Group>
      {audit.error && (
        <Alert color="red" role="alert">
          {audit.error.message}
        </Alert>
      )}
      <Table.ScrollContainer minWidth={720}>
        <Table striped>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>When</Table.Th>
              <Table.Th>Actor</Table.Th>
              <Table.Th>Action</Table.Th>
              <Table.Th>Subject</Table.Th>
              <Table.Th>Reason</Table.Th>
              <Table.Th>Change</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {rows.map((entry) => (
              <Table.Tr key={entry.id} data-testid="audit-entry">
                <Table.Td>{formatDateTime(entry.created_at)}</Table.Td>
                <Table.Td>
                  {entry.actor}
                  <Text size="xs" c="dimmed">
                    {entry.role}
                  </Text>
                </Table.Td>
                <Table.Td>
                  <Code>{entry.action}</Code>
                </Table.Td>
                <Table.Td>
                  {entry.subject_type ? `${entry.subject_type} ${entry.subject_id ?? ''}` : '—'}
                </Table.Td>
                <Table.Td>{entry.reason ?? '—'}</Table.Td>
                <Table.Td>
                  <Text size="xs" ff="monospace">
                    {stateText(entry.before)} → {stateText(entry.after)}
                  </Text>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {rows.length === 0 && audit.isSuccess && (
        <Text c="dimmed">Nothing recorded that matches.</Text>
      )}
      {audit.hasNextPage && (
        <Button
          variant="default"
          onClick={() => void audit.fetchNextPage()}
          loading={audit.isFetchingNextPage}
        >
          Older entries
        </Button>
      )}
    </Stack>
  );
}
