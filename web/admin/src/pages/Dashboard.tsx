import {
  Alert,
  Card,
  Group,
  Loader,
  SegmentedControl,
  SimpleGrid,
  Stack,
  Table,
  Text,
  Title,
} from '@mantine/core';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { type ReactNode, useState } from 'react';
import { dataOf, type Ok } from '../../../shared/api.ts';
import { useApi } from '../auth.tsx';
import { DailyChart } from '../DailyChart.tsx';
import { formatCredits } from '../format.ts';
import { ProvidersCard } from '../ProvidersCard.tsx';
import { QueueCard } from '../QueueCard.tsx';

type Stats = Ok<'/api/v1/admin/stats', 'get'>;

const RANGES = [
  { value: '7', label: '7 days' },
  { value: '30', label: '30 days' },
  { value: '90', label: '90 days' },
];

/** The UTC day `days - 1` days before today, and today: the range of the last `days` days. */
function lastDays(days: number): { from: string; to: string } {
  const today = new Date();
  const first = new Date(today.getTime() - (days - 1) * 86_400_000);
  return { from: first.toISOString().slice(0, 10), to: today.toISOString().slice(0, 10) };
}

const percent = new Intl.NumberFormat(undefined, { style: 'percent', maximumFractionDigits: 1 });

function Kpi({ label, value, hint }: { label: string; value: ReactNode; hint?: string }) {
  return (
    <Card withBorder padding="sm">
      <Text size="xs" c="dimmed">
        {label}
      </Text>
      <Text fw={700} fz="xl" data-testid={`kpi-${label}`}>
        {value}
      </Text>
      {hint && (
        <Text size="xs" c="dimmed">
          {hint}
        </Text>
      )}
    </Card>
  );
}

export function DashboardPage() {
  const api = useApi();
  const [range, setRange] = useState('30');
  const stats = useQuery({
    queryKey: ['stats', range],
    queryFn: async () =>
      dataOf(await api.GET('/api/v1/admin/stats', { params: { query: lastDays(Number(range)) } })),
    placeholderData: keepPreviousData,
  });

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Dashboard</Title>
        <SegmentedControl data={RANGES} value={range} onChange={setRange} aria-label="Range" />
      </Group>
      {stats.error && (
        <Alert color="red" role="alert">
          {stats.error.message}
        </Alert>
      )}
      {!stats.data ? (
        !stats.error && <Loader aria-label="Loading" />
      ) : (
        <>
          <Overview stats={stats.data} />
          {/* Last, and once the figures above are drawn: drawn first, the overview pushed them
              down (a layout shift of 0.55 on a phone). */}
          <SimpleGrid cols={{ base: 1, md: 2 }}>
            <QueueCard />
            <ProvidersCard />
          </SimpleGrid>
        </>
      )}
    </Stack>
  );
}

function Overview({ stats }: { stats: Stats }) {
  const { users, generations, money } = stats;
  return (
    <Stack>
      <SimpleGrid cols={{ base: 2, sm: 3, lg: 6 }}>
        <Kpi label="Users" value={formatCredits(users.total)} hint={`${users.new} new`} />
        <Kpi label="Active users" value={formatCredits(users.active)} />
        <Kpi
          label="Generations"
          value={formatCredits(generations.total)}
          hint={
            generations.success_rate === null
              ? undefined
              : `${percent.format(generations.success_rate)} succeeded`
          }
        />
        <Kpi
          label="Time to image"
          value={generations.seconds_p50 === null ? '—' : `${generations.seconds_p50.toFixed(1)} s`}
          hint={
            generations.seconds_p95 === null
              ? undefined
              : `p95 ${generations.seconds_p95.toFixed(1)} s`
          }
        />
        <Kpi
          label="Stars received"
          value={formatCredits(money.stars_received)}
          hint={`${money.payments} payments`}
        />
        <Kpi
          label="Credits spent"
          value={formatCredits(money.credits_spent)}
          hint={`${formatCredits(money.credits_sold)} sold`}
        />
      </SimpleGrid>
      <SimpleGrid cols={{ base: 1, md: 2 }}>
        <DailyChart
          title="New users"
          days={stats.daily}
          kind="bar"
          series={[{ key: 'new_users', name: 'New users', color: '#228be6' }]}
        />
        <DailyChart
          title="Generations"
          days={stats.daily}
          kind="bar"
          series={[
            { key: 'generations_succeeded', name: 'Succeeded', color: '#40c057' },
            { key: 'generations_failed', name: 'Failed', color: '#fa5252' },
          ]}
        />
        <DailyChart
          title="Stars received"
          days={stats.daily}
          kind="area"
          series={[{ key: 'stars_received', name: 'Stars', color: '#fab005' }]}
        />
        <DailyChart
          title="Credits spent"
          days={stats.daily}
          kind="area"
          series={[{ key: 'credits_spent', name: 'Credits', color: '#7950f2' }]}
        />
      </SimpleGrid>
      <Card withBorder padding="sm">
        <Text fw={600} mb="xs">
          By model
        </Text>
        {generations.by_model.length === 0 ? (
          <Text c="dimmed">No generations in this range.</Text>
        ) : (
          <Table.ScrollContainer minWidth={360}>
            <Table>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Model</Table.Th>
                  <Table.Th ta="right">Total</Table.Th>
                  <Table.Th ta="right">Succeeded</Table.Th>
                  <Table.Th ta="right">Failed</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {generations.by_model.map((model) => (
                  <Table.Tr key={model.model}>
                    <Table.Td>{model.model}</Table.Td>
                    <Table.Td ta="right">{formatCredits(model.total)}</Table.Td>
                    <Table.Td ta="right">{formatCredits(model.succeeded)}</Table.Td>
                    <Table.Td ta="right">{formatCredits(model.failed)}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        )}
      </Card>
    </Stack>
  );
}
