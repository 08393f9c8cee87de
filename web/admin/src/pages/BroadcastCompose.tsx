import {
  Alert,
  Anchor,
  Box,
  Button,
  Card,
  Chip,
  Group,
  SegmentedControl,
  SimpleGrid,
  Skeleton,
  Stack,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { lazy, Suspense, useState } from 'react';
import { Link, useNavigate } from 'react-router';
import type { paths } from '../../../../src/api-client/schema.ts';
import { dataOf } from '../../../shared/api.ts';
import { useApi } from '../auth.tsx';
import { formatCredits } from '../format.ts';
import { TELEGRAM_URL, TelegramPreview } from '../TelegramPreview.tsx';
import type { FormattedText } from '../telegram-text.ts';
import { USER_FILTERS, type UserFilter } from '../user-filters.ts';

// The editor (Tiptap and ProseMirror) is most of this page's script: the page draws without it
// first, in the editor's place a box of its size, and the editor follows.
const MessageEditor = lazy(() =>
  import('../MessageEditor.tsx').then((module) => ({ default: module.MessageEditor })),
);

/** The Bot API's limits on a message (sendMessage) and the API's on a broadcast. */
const TEXT_LIMIT = 4096;
const ENTITY_LIMIT = 100;
const BUTTON_TEXT_LIMIT = 64;

type NewBroadcast =
  paths['/api/v1/admin/broadcasts']['post']['requestBody']['content']['application/json'];

const chatId = /^-?[1-9]\d{0,15}$/;
const messageId = /^[1-9]\d{0,9}$/;

/** The composer: the message (with a preview of exactly what users get), its button and audience. */
export function BroadcastComposePage() {
  const api = useApi();
  const queries = useQueryClient();
  const navigate = useNavigate();
  const [kind, setKind] = useState<'text' | 'copy'>('text');
  const [message, setMessage] = useState<FormattedText>({ text: '', entities: [] });
  const [copy, setCopy] = useState({ chat: '', message: '' });
  const [button, setButton] = useState({ text: '', url: '' });
  const [filters, setFilters] = useState<UserFilter[]>([]);
  const [query, setQuery] = useState('');
  const [audience] = useDebouncedValue({ filters, query: query.trim() }, 300);

  const recipients = useQuery({
    queryKey: ['broadcast-audience', audience],
    queryFn: async () =>
      dataOf(
        await api.GET('/api/v1/admin/broadcasts/audience', {
          params: {
            query: {
              ...(audience.filters.length > 0 ? { filter: audience.filters.join(',') } : {}),
              ...(audience.query ? { query: audience.query } : {}),
            },
          },
        }),
      ),
    placeholderData: keepPreviousData,
  });

  const copyValid = chatId.test(copy.chat.trim()) && messageId.test(copy.message.trim());
  const copied =
    kind === 'copy' && copyValid
      ? { from_chat_id: Number(copy.chat.trim()), message_id: Number(copy.message.trim()) }
      : null;
  const buttonGiven = button.text.trim() !== '' || button.url.trim() !== '';
  const buttonUrlValid = TELEGRAM_URL.test(button.url.trim());
  const buttonValid =
    !buttonGiven ||
    (button.text.trim() !== '' && button.text.trim().length <= BUTTON_TEXT_LIMIT && buttonUrlValid);
  const shownButton =
    buttonGiven && buttonValid ? { text: button.text.trim(), url: button.url.trim() } : null;

  const problems: string[] = [];
  if (kind === 'text') {
    if (message.text === '') problems.push('Write the message.');
    if (message.text.length > TEXT_LIMIT)
      problems.push(
        `The message is longer than Telegram's ${formatCredits(TEXT_LIMIT)} characters.`,
      );
    if (message.entities.length > ENTITY_LIMIT)
      problems.push(`The message has more than ${ENTITY_LIMIT} formatted parts.`);
  } else if (!copyValid) {
    problems.push('Name the chat id and message id to copy.');
  }
  if (!buttonValid)
    problems.push('A button needs both its text and an https://, http:// or tg:// link.');

  const create = useMutation({
    mutationFn: async () => {
      const body: NewBroadcast = {
        audience: { filters, ...(query.trim() ? { query: query.trim() } : {}) },
        ...(shownButton ? { button: shownButton } : {}),
        ...(kind === 'text'
          ? {
              text: message.text,
              ...(message.entities.length > 0 ? { entities: message.entities } : {}),
            }
          : copied
            ? { copy: copied }
            : {}),
      };
      return dataOf(await api.POST('/api/v1/admin/broadcasts', { body }));
    },
    onSuccess: async (created) => {
      await queries.invalidateQueries({ queryKey: ['broadcasts'] });
      await navigate(`/broadcasts/${created.id}`);
    },
  });

  return (
    <Stack>
      <Anchor component={Link} to="/broadcasts" size="sm">
        ← Broadcasts
      </Anchor>
      <Title order={2}>New broadcast</Title>
      <SimpleGrid cols={{ base: 1, md: 2 }} spacing="lg">
        <Stack>
          <SegmentedControl
            aria-label="What to send"
            value={kind}
            onChange={(value) => setKind(value as 'text' | 'copy')}
            data={[
              { value: 'text', label: 'Text' },
              { value: 'copy', label: 'Copy a message' },
            ]}
          />
          {/* Kept mounted: switching to a copy and back keeps what was written. */}
          <Box hidden={kind !== 'text'}>
            <Suspense fallback={<Skeleton h={190} />}>
              <MessageEditor onChange={setMessage} />
            </Suspense>
            <Text size="xs" c="dimmed" mt={4} data-testid="message-length">
              {formatCredits(message.text.length)} / {formatCredits(TEXT_LIMIT)} characters
            </Text>
          </Box>
          {kind === 'copy' && (
            <SimpleGrid cols={2}>
              <TextInput
                label="Chat id"
                description="Where the message is (the bot must be in it)"
                value={copy.chat}
                onChange={(event) => {
                  const value = event.currentTarget.value;
                  setCopy((current) => ({ ...current, chat: value }));
                }}
                inputMode="numeric"
              />
              <TextInput
                label="Message id"
                description="Photos, videos, any kind"
                value={copy.message}
                onChange={(event) => {
                  const value = event.currentTarget.value;
                  setCopy((current) => ({ ...current, message: value }));
                }}
                inputMode="numeric"
              />
            </SimpleGrid>
          )}
          <SimpleGrid cols={{ base: 1, xs: 2 }}>
            <TextInput
              label="Button text"
              description="Optional: one button under the message"
              value={button.text}
              maxLength={BUTTON_TEXT_LIMIT}
              onChange={(event) => {
                const value = event.currentTarget.value;
                setButton((current) => ({ ...current, text: value }));
              }}
            />
            <TextInput
              label="Button link"
              description="https://, http:// or tg://"
              placeholder="https://t.me/your_bot?start=offer"
              value={button.url}
              error={
                button.url.trim() !== '' && !buttonUrlValid
                  ? 'Telegram opens https://, http:// and tg:// links'
                  : undefined
              }
              onChange={(event) => {
                const value = event.currentTarget.value;
                setButton((current) => ({ ...current, url: value }));
              }}
            />
          </SimpleGrid>
          <Card withBorder>
            <Stack gap="sm">
              <Title order={3} size="h5">
                Audience
              </Title>
              <Chip.Group
                multiple
                value={filters}
                onChange={(value) => setFilters(value as UserFilter[])}
              >
                <Group gap="xs" aria-label="Users who are all of" role="group">
                  {USER_FILTERS.map((filter) => (
                    <Chip key={filter.value} value={filter.value} size="sm">
                      {filter.label}
                    </Chip>
                  ))}
                </Group>
              </Chip.Group>
              <TextInput
                label="Only users matching"
                description="Optional: a telegram id, @username or name, as on the Users page"
                value={query}
                onChange={(event) => setQuery(event.currentTarget.value)}
              />
              <Text fw={600} aria-live="polite" data-testid="audience-count">
                {recipients.data === undefined
                  ? 'Counting…'
                  : recipients.data.recipients === 1
                    ? '1 recipient now'
                    : `${formatCredits(recipients.data.recipients)} recipients now`}
              </Text>
              {recipients.error && (
                <Alert color="red" role="alert">
                  {recipients.error.message}
                </Alert>
              )}
            </Stack>
          </Card>
        </Stack>
        <Box>
          <Box pos="sticky" top={72}>
            <Title order={3} size="h5" mb="xs">
              What users will see
            </Title>
            <TelegramPreview
              message={kind === 'text' ? message : null}
              copy={copied}
              button={shownButton}
            />
          </Box>
        </Box>
      </SimpleGrid>
      {create.error && (
        <Alert color="red" role="alert">
          {create.error.message}
        </Alert>
      )}
      {problems.length > 0 && (
        <Stack gap={2}>
          {problems.map((problem) => (
            <Text key={problem} size="sm" c="dimmed">
              {problem}
            </Text>
          ))}
        </Stack>
      )}
      <Group>
        <Button
          onClick={() => create.mutate()}
          loading={create.isPending}
          disabled={problems.length > 0}
        >
          Create draft
        </Button>
        <Text size="sm" c="dimmed">
          Nothing is sent until you start it.
        </Text>
      </Group>
    </Stack>
  );
}
