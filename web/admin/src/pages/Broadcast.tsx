import {
  Alert,
  Anchor,
  Box,
  Button,
  Card,
  Group,
  Loader,
  SimpleGrid,
  Stack,
  Text,
  Title,
} from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useParams } from 'react-router';
import { dataOf } from '../../../shared/api.ts';
import { useApi, useAuth } from '../auth.tsx';
import {
  audienceText,
  type Broadcast,
  type BroadcastStatus,
  ProgressBar,
  StatusBadge,
} from '../broadcast-view.tsx';
import { formatCredits, formatDateTime } from '../format.ts';
import { ReasonDialog } from '../ReasonDialog.tsx';
import { TelegramPreview } from '../TelegramPreview.tsx';
import type { MessageEntity } from '../telegram-text.ts';

/** While it sends, its page follows the progress this often. */
const SENDING_REFRESH_MS = 1_000;

type Action = 'start' | 'pause' | 'resume' | 'cancel';

/** Each action: from which states, and how its confirmation reads. */
const actions: Record<
  Action,
  {
    from: readonly BroadcastStatus[];
    label: string;
    title: string;
    color?: string;
    variant: 'filled' | 'light' | 'default';
    question: (broadcast: Broadcast, recipients: number | undefined) => string;
  }
> = {
  start: {
    from: ['draft'],
    label: 'Start sending',
    title: 'Start this broadcast',
    variant: 'filled',
    question: (_, recipients) =>
      `Send it to ${recipients === undefined ? 'its audience' : `${formatCredits(recipients)} users`} now? The audience is fixed at this moment; each user gets it once.`,
  },
  pause: {
    from: ['running'],
    label: 'Pause',
    title: 'Pause this broadcast',
    variant: 'default',
    question: ({ progress }) =>
      `Stop sending after the messages on their way; ${formatCredits(progress.remaining)} users wait until it is resumed.`,
  },
  resume: {
    from: ['paused'],
    label: 'Resume',
    title: 'Resume this broadcast',
    variant: 'filled',
    question: ({ progress }) =>
      `Go on sending to the ${formatCredits(progress.remaining)} users who have not got it yet.`,
  },
  cancel: {
    from: ['draft', 'running', 'paused'],
    label: 'Cancel broadcast',
    title: 'Cancel this broadcast',
    color: 'red',
    variant: 'light',
    question: ({ progress, started_at }) =>
      started_at === null
        ? 'Nothing has been sent. The draft can never be started after this.'
        : `Nothing more is sent: ${formatCredits(progress.remaining)} users will not get it. This cannot be undone.`,
  },
};

function Figure({ label, value }: { label: string; value: number }) {
  return (
    <div data-testid={`figure-${label}`}>
      <Text size="xs" c="dimmed">
        {label}
      </Text>
      <Text fw={600}>{formatCredits(value)}</Text>
    </div>
  );
}

function ActionButton({
  broadcast,
  action,
  recipients,
}: {
  broadcast: Broadcast;
  action: Action;
  recipients: number | undefined;
}) {
  const api = useApi();
  const queries = useQueryClient();
  const rule = actions[action];
  const [confirming, setConfirming] = useState(false);
  const [reason, setReason] = useState('');
  const change = useMutation({
    mutationFn: async () =>
      dataOf(
        await api.POST(`/api/v1/admin/broadcasts/{broadcast_id}/${action}`, {
          params: { path: { broadcast_id: broadcast.id } },
          body: { reason: reason.trim() },
        }),
      ),
    onSuccess: async (changed) => {
      queries.setQueryData(['broadcast', broadcast.id], changed);
      setConfirming(false);
      setReason('');
      await queries.invalidateQueries({ queryKey: ['broadcasts'] });
      await queries.invalidateQueries({ queryKey: ['audit'] });
    },
  });
  return (
    <>
      <Button
        variant={rule.variant}
        {...(rule.color ? { color: rule.color } : {})}
        onClick={() => {
          change.reset();
          setConfirming(true);
        }}
      >
        {rule.label}
      </Button>
      <ReasonDialog
        opened={confirming}
        onClose={() => setConfirming(false)}
        title={rule.title}
        reasonLabel="Reason"
        reason={reason}
        onReason={setReason}
        error={change.error}
        pending={change.isPending}
        cancelLabel="Back"
        confirmLabel={rule.label}
        {...(rule.color ? { confirmColor: rule.color } : {})}
        onConfirm={() => change.mutate()}
      >
        <Text>{rule.question(broadcast, recipients)}</Text>
      </ReasonDialog>
    </>
  );
}

export function BroadcastPage() {
  const api = useApi();
  const { me } = useAuth();
  const isAdmin = me !== null && me !== false && me.role === 'admin';
  const id = Number(useParams().broadcastId);
  const broadcast = useQuery({
    queryKey: ['broadcast', id],
    queryFn: async () =>
      dataOf(
        await api.GET('/api/v1/admin/broadcasts/{broadcast_id}', {
          params: { path: { broadcast_id: id } },
        }),
      ),
    refetchInterval: (query) =>
      query.state.data?.status === 'running' ? SENDING_REFRESH_MS : false,
  });
  const view = broadcast.data;
  // Who a start would send to now: only a draft has not fixed its audience yet.
  const preview = useQuery({
    queryKey: ['broadcast-preview', id],
    queryFn: async () =>
      dataOf(
        await api.GET('/api/v1/admin/broadcasts/{broadcast_id}/preview', {
          params: { path: { broadcast_id: id } },
        }),
      ),
    enabled: view?.status === 'draft',
  });

  if (broadcast.error) {
    return (
      <Alert color="red" role="alert">
        {broadcast.error.message}
      </Alert>
    );
  }
  if (!view) return <Loader aria-label="Loading" />;
  const recipients = view.status === 'draft' ? preview.data?.recipients : view.progress.total;
  const available = (Object.keys(actions) as Action[]).filter((action) =>
    actions[action].from.includes(view.status),
  );
  return (
    <Stack>
      <Anchor component={Link} to="/broadcasts" size="sm">
        ← Broadcasts
      </Anchor>
      <Group gap="sm">
        <Title order={2}>Broadcast #{view.id}</Title>
        <StatusBadge status={view.status} />
      </Group>
      <SimpleGrid cols={{ base: 1, md: 2 }} spacing="lg">
        <Stack>
          <Card withBorder>
            <Stack gap="sm">
              <Title order={3} size="h5">
                Progress
              </Title>
              <ProgressBar broadcast={view} />
              {view.started_at !== null && (
                <SimpleGrid cols={{ base: 3, xs: 5 }}>
                  <Figure label="Recipients" value={view.progress.total} />
                  <Figure label="Sent" value={view.progress.sent} />
                  <Figure label="Blocked" value={view.progress.blocked} />
                  <Figure label="Failed" value={view.progress.failed} />
                  <Figure label="Remaining" value={view.progress.remaining} />
                </SimpleGrid>
              )}
              {view.status === 'draft' && (
                <Text size="sm" data-testid="draft-recipients">
                  {recipients === undefined
                    ? 'Counting the audience…'
                    : `${formatCredits(recipients)} ${recipients === 1 ? 'user' : 'users'} would get it now.`}
                </Text>
              )}
            </Stack>
          </Card>
          {isAdmin && available.length > 0 && (
            <Group>
              {available.map((action) => (
                <ActionButton
                  key={action}
                  broadcast={view}
                  action={action}
                  recipients={recipients}
                />
              ))}
            </Group>
          )}
          <Card withBorder>
            <Stack gap={4}>
              <Text size="sm">
                <b>Audience:</b> {audienceText(view.audience)}
              </Text>
              <Text size="sm">
                <b>Created:</b> {formatDateTime(view.created_at)} by {view.created_by}
              </Text>
              <Text size="sm">
                <b>Started:</b> {formatDateTime(view.started_at)}
              </Text>
              <Text size="sm">
                <b>{view.status === 'cancelled' ? 'Cancelled' : 'Completed'}:</b>{' '}
                {formatDateTime(view.completed_at)}
              </Text>
            </Stack>
          </Card>
        </Stack>
        <Box>
          <Title order={3} size="h5" mb="xs">
            What users see
          </Title>
          <TelegramPreview
            message={
              view.text === null
                ? null
                : { text: view.text, entities: (view.entities ?? []) as MessageEntity[] }
            }
            copy={view.copy}
            button={view.button}
          />
        </Box>
      </SimpleGrid>
    </Stack>
  );
}
