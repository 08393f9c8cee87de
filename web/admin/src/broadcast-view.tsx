import { Badge, Group, Progress, Text } from '@mantine/core';
import type { Ok } from '../../shared/api.ts';
import { formatCredits } from './format.ts';
import { filterLabel } from './user-filters.ts';

/** What the broadcast pages share: its shape, status badge, progress and audience in words. */

export type Broadcast = Ok<'/api/v1/admin/broadcasts/{broadcast_id}', 'get'>;
export type BroadcastStatus = Broadcast['status'];

const statusColors: Record<BroadcastStatus, string> = {
  draft: 'gray',
  running: 'blue',
  paused: 'yellow',
  completed: 'green',
  cancelled: 'red',
};

export function StatusBadge({ status }: { status: BroadcastStatus }) {
  return (
    <Badge color={statusColors[status]} variant="light" data-testid="broadcast-status">
      {status}
    </Badge>
  );
}

/** How far sending got: every recipient sent, failed or blocked is done. */
export function percentDone(progress: Broadcast['progress']): number {
  if (progress.total === 0) return 100;
  const done = progress.sent + progress.failed + progress.blocked;
  return Math.floor((done / progress.total) * 100);
}

/** The audience as an operator reads it: "Paying · Active 30 days · matching “anna”". */
export function audienceText(audience: Broadcast['audience']): string {
  const parts = audience.filters.map(filterLabel);
  if (audience.query) parts.push(`matching “${audience.query}”`);
  return parts.length === 0 ? 'Every user' : parts.join(' · ');
}

/** A broadcast's progress bar with its numbers; `label` names it for screen readers. */
export function ProgressBar({ broadcast, size = 'md' }: { broadcast: Broadcast; size?: string }) {
  const { progress } = broadcast;
  const started = broadcast.started_at !== null;
  const percent = percentDone(progress);
  return (
    <div>
      <Progress
        value={started ? percent : 0}
        size={size}
        aria-label={`Broadcast ${broadcast.id} progress`}
        animated={broadcast.status === 'running'}
      />
      <Group justify="space-between" gap={4} mt={2} wrap="nowrap">
        <Text size="xs" c="dimmed">
          {started
            ? `${formatCredits(progress.total - progress.remaining)} of ${formatCredits(progress.total)}`
            : 'not started'}
        </Text>
        {started && (
          <Text size="xs" fw={600} data-testid="progress-percent">
            {percent}%
          </Text>
        )}
      </Group>
    </div>
  );
}
