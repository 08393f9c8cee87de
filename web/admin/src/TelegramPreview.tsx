import { Box, Button, Paper, Text } from '@mantine/core';
import type { ReactNode } from 'react';
import { type EntityNode, entityTree, type FormattedText } from './telegram-text.ts';

/** Telegram's URL buttons and text links take http(s) and tg:// addresses only. */
export const TELEGRAM_URL = /^(https?|tg):\/\/\S+$/;

const blockStyle = { display: 'inline-block', width: '100%', boxSizing: 'border-box' } as const;

const plain = (nodes: readonly EntityNode[]): string =>
  nodes.map((node) => (typeof node === 'string' ? node : plain(node.children))).join('');

/** One entity as Telegram's clients draw it. */
function element(node: Exclude<EntityNode, string>, children: ReactNode, key: number): ReactNode {
  const { entity } = node;
  switch (entity.type) {
    case 'bold':
      return <strong key={key}>{children}</strong>;
    case 'italic':
      return <em key={key}>{children}</em>;
    case 'underline':
      return <u key={key}>{children}</u>;
    case 'strikethrough':
      return <s key={key}>{children}</s>;
    case 'spoiler':
      // Hidden under noise until tapped in Telegram; shown here, marked as such.
      return (
        <span
          key={key}
          data-entity="spoiler"
          title="Spoiler: hidden until tapped"
          style={{
            background: 'var(--mantine-color-gray-7)',
            color: 'var(--mantine-color-white)',
            borderRadius: 3,
          }}
        >
          {children}
        </span>
      );
    case 'code':
      return (
        <Box key={key} component="code" ff="monospace" fz="sm">
          {children}
        </Box>
      );
    case 'pre':
      return (
        <Box
          key={key}
          component="code"
          data-entity="pre"
          ff="monospace"
          fz="sm"
          p={6}
          bg="var(--mantine-color-default-hover)"
          style={{ ...blockStyle, borderRadius: 6 }}
        >
          {children}
        </Box>
      );
    case 'blockquote':
      return (
        <Box
          key={key}
          component="blockquote"
          m={0}
          pl={8}
          style={{ ...blockStyle, borderLeft: '3px solid var(--mantine-primary-color-filled)' }}
        >
          {children}
        </Box>
      );
    case 'text_link':
    case 'url': {
      const href = entity.type === 'url' ? plain(node.children) : (entity.url ?? '');
      return TELEGRAM_URL.test(href) ? (
        <a key={key} href={href} target="_blank" rel="noreferrer">
          {children}
        </a>
      ) : (
        <span key={key}>{children}</span>
      );
    }
    default:
      // Entities only the API sends (mention, hashtag…): Telegram styles them; the words stay.
      return <span key={key}>{children}</span>;
  }
}

function render(nodes: readonly EntityNode[]): ReactNode[] {
  return nodes.map((node, index) =>
    typeof node === 'string' ? node : element(node, render(node.children), index),
  );
}

/**
 * What a user is sent, drawn as Telegram draws it: the text with its entities (from the very
 * object the API gets), or the copied message's place, and the URL button under it.
 */
export function TelegramPreview({
  message,
  copy,
  button,
}: {
  message: FormattedText | null;
  copy: { from_chat_id: number; message_id: number } | null;
  button: { text: string; url: string } | null;
}) {
  return (
    <Paper
      p="md"
      radius="md"
      bg="var(--mantine-color-gray-light)"
      role="region"
      aria-label="Preview"
      data-testid="preview"
    >
      <Box maw={420}>
        <Paper p="sm" radius="lg" shadow="xs" withBorder>
          {message ? (
            <Text
              component="div"
              data-testid="preview-text"
              style={{ whiteSpace: 'pre-wrap', overflowWrap: 'anywhere' }}
            >
              {message.text === '' ? (
                <Text span c="dimmed">
                  The message is empty.
                </Text>
              ) : (
                render(entityTree(message))
              )}
            </Text>
          ) : (
            <Text c="dimmed" fs="italic">
              {copy
                ? `A copy of message ${copy.message_id} from chat ${copy.from_chat_id}, as it is there (photo, video, text…).`
                : 'Name the chat and message to copy.'}
            </Text>
          )}
        </Paper>
        {button && (
          <Button
            component="a"
            href={button.url}
            target="_blank"
            rel="noreferrer"
            fullWidth
            mt={4}
            radius="md"
            variant="white"
            data-testid="preview-button"
          >
            {button.text}
          </Button>
        )}
      </Box>
    </Paper>
  );
}
