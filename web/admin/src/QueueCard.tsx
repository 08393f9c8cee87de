import { Alert, Card, SimpleGrid, Text, Title } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { dataOf } from '../../shared/api.ts';
import { useApi } from './auth.tsx';
import { formatCredits } from './format.ts';

/** How often the live queue is asked again while a page shows it. */
const QUEUE_REFRESH_MS = 5_000;

const text = {
  queue: 'Queue now',
  active: 'Active generations',
  waiting: 'Jobs waiting',
  running: 'Jobs running',
  oldestWait: 'Oldest wait',
  failedLastHour: 'Failed, last hour',
};

function seconds(value: number | null): string {
  if (value === null) return '—';
  return value < 120 ? `${Math.round(value)} s` : `${Math.round(value / 60)} min`;
}

/** The job queue now (GET /admin/queue), asked again every few seconds: the dashboard and the
 * generations page show it. */
export function QueueCard() {
  const api = useApi();
  const queue = useQuery({
    queryKey: ['queue'],
    queryFn: async () => dataOf(await api.GET('/api/v1/admin/queue')),
    refetchInterval: QUEUE_REFRESH_MS,
  });
  const data = queue.data;
  const jobs = data?.jobs ?? [];
  const figure = (label: string, value: string) => (
    <div data-testid={`queue-${label}`}>
      <Text size="xs" c="dimmed">
        {label}
      </Text>
      <Text fw={600}>{value}</Text>
    </div>
  );
  return (
    <Card withBorder>
      <Title order={3} size="h5" mb="xs">
        {text.queue}
      </Title>
      {queue.error && (
        <Alert color="red" role="alert">
          {queue.error.message}
        </Alert>
      )}
      {data && (
        <SimpleGrid cols={{ base: 2, sm: 5 }}>
          {figure(text.active, formatCredits(data.active_generations))}
          {figure(text.waiting, formatCredits(jobs.reduce((sum, job) => sum + job.waiting, 0)))}
          {figure(text.running, formatCredits(jobs.reduce((sum, job) => sum + job.running, 0)))}
          {figure(text.oldestWait, seconds(data.oldest_waiting_seconds))}
          {figure(text.failedLastHour, formatCredits(data.failed_last_hour))}
        </SimpleGrid>
      )}
    </Card>
  );
}
