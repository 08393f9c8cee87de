import {
  ActionIcon,
  Button,
  Group,
  Paper,
  Popover,
  Stack,
  Text,
  TextInput,
  Tooltip,
} from '@mantine/core';
import { Mark } from '@tiptap/core';
import Blockquote from '@tiptap/extension-blockquote';
import Bold from '@tiptap/extension-bold';
import Code from '@tiptap/extension-code';
import CodeBlock from '@tiptap/extension-code-block';
import Document from '@tiptap/extension-document';
import HardBreak from '@tiptap/extension-hard-break';
import Italic from '@tiptap/extension-italic';
import Paragraph from '@tiptap/extension-paragraph';
import Strike from '@tiptap/extension-strike';
import TextNode from '@tiptap/extension-text';
import Underline from '@tiptap/extension-underline';
import { UndoRedo } from '@tiptap/extensions';
import { EditorContent, useEditor, useEditorState } from '@tiptap/react';
import { type ComponentPropsWithRef, type ReactNode, useId, useState } from 'react';
import { TELEGRAM_URL } from './TelegramPreview.tsx';
import { type FormattedText, messageOf } from './telegram-text.ts';
import './MessageEditor.css';

/** Telegram's spoiler: the one formatting an editor kit has no mark for. */
const Spoiler = Mark.create({
  name: 'spoiler',
  parseHTML: () => [{ tag: 'span[data-spoiler]' }],
  renderHTML: () => ['span', { 'data-spoiler': '', class: 'spoiler' }, 0],
});

/**
 * A link on words (Telegram's text_link): only to addresses Telegram opens, so a pasted
 * javascript: or relative link stays plain text. Tiptap's own Link extension brings linkifyjs for
 * autolinking, which Telegram does itself.
 */
const Link = Mark.create({
  name: 'link',
  inclusive: false,
  addAttributes: () => ({ href: { default: null } }),
  parseHTML: () => [
    {
      tag: 'a[href]',
      getAttrs: (element) => {
        const href = element.getAttribute('href') ?? '';
        return TELEGRAM_URL.test(href) ? { href } : false;
      },
    },
  ],
  renderHTML: ({ HTMLAttributes }) => ['a', { ...HTMLAttributes, rel: 'noreferrer' }, 0],
});

/**
 * The formatting Telegram messages have, and nothing else: no headings, lists or rules (Telegram
 * would show their text without them). Links are written through the Link button only.
 */
const extensions = [
  Document,
  Paragraph,
  TextNode,
  HardBreak,
  Bold,
  Italic,
  Underline,
  Strike,
  Code,
  CodeBlock,
  Blockquote,
  Spoiler,
  Link,
  UndoRedo,
];

const marks = [
  { name: 'bold', label: 'Bold', shortcut: 'Ctrl+B', face: <b>B</b> },
  { name: 'italic', label: 'Italic', shortcut: 'Ctrl+I', face: <i>I</i> },
  { name: 'underline', label: 'Underline', shortcut: 'Ctrl+U', face: <u>U</u> },
  { name: 'strike', label: 'Strikethrough', shortcut: 'Ctrl+Shift+S', face: <s>S</s> },
  { name: 'spoiler', label: 'Spoiler', shortcut: null, face: '▒' },
  { name: 'code', label: 'Code', shortcut: 'Ctrl+E', face: '</>' },
] as const;

/** A chain link (the emoji has no glyph in every font). */
function LinkIcon() {
  return (
    <svg
      width="18"
      height="18"
      viewBox="0 0 24 24"
      fill="none"
      stroke="currentColor"
      strokeWidth="2"
      strokeLinecap="round"
      aria-hidden="true"
    >
      <path d="M9 15l6 -6" />
      <path d="M11 6l.46 -.53a5 5 0 0 1 7.07 7.07l-.53 .46" />
      <path d="M13 18l-.4 .53a5.07 5.07 0 0 1 -7.13 0a4.97 4.97 0 0 1 0 -7.07l.53 -.46" />
    </svg>
  );
}

/**
 * A toolbar button. Other props (the link's popover target: its ref, id and aria-expanded) go to
 * the button itself, where those attributes are valid.
 */
function Tool({
  label,
  active,
  onClick,
  children,
  ...target
}: {
  label: string;
  active: boolean;
  onClick: () => void;
  children: ReactNode;
} & Omit<ComponentPropsWithRef<'button'>, 'onClick' | 'children' | 'color' | 'style'>) {
  return (
    <Tooltip label={label} openDelay={400}>
      <ActionIcon
        {...target}
        variant={active ? 'filled' : 'default'}
        size="lg"
        aria-label={label}
        aria-pressed={active}
        // A click keeps the editor's focus and selection: what is typed next gets the format.
        onMouseDown={(event) => event.preventDefault()}
        onClick={onClick}
      >
        {children}
      </ActionIcon>
    </Tooltip>
  );
}

/**
 * The broadcast's text: an editor whose toolbar has Telegram's formatting (bold, italic,
 * underline, strikethrough, spoiler, code, link, quote, code block). Every change reports the
 * message as Telegram text and entities (`messageOf`): what the preview draws and the API is sent.
 */
export function MessageEditor({ onChange }: { onChange: (message: FormattedText) => void }) {
  const labelId = useId();
  const [linkOpen, setLinkOpen] = useState(false);
  const [href, setHref] = useState('');
  const editor = useEditor({
    extensions,
    editorProps: {
      attributes: {
        role: 'textbox',
        'aria-multiline': 'true',
        'aria-labelledby': labelId,
        class: 'message-editor',
      },
    },
    onUpdate: ({ editor: changed }) => onChange(messageOf(changed.getJSON())),
  });
  const state = useEditorState({
    editor,
    selector: ({ editor: current }) => ({
      bold: current.isActive('bold'),
      italic: current.isActive('italic'),
      underline: current.isActive('underline'),
      strike: current.isActive('strike'),
      spoiler: current.isActive('spoiler'),
      code: current.isActive('code'),
      link: current.isActive('link'),
      blockquote: current.isActive('blockquote'),
      codeBlock: current.isActive('codeBlock'),
      selection: !current.state.selection.empty,
    }),
  });
  const applyLink = () => {
    const chain = editor.chain().focus().extendMarkRange('link');
    if (href.trim() === '') chain.unsetMark('link').run();
    else chain.setMark('link', { href: href.trim() }).run();
    setLinkOpen(false);
  };
  const linkValid = href.trim() === '' || TELEGRAM_URL.test(href.trim());
  return (
    <Stack gap={4}>
      <Text component="div" id={labelId} size="sm" fw={500}>
        Message
      </Text>
      <Paper withBorder radius="sm">
        <Group gap={4} p={4} role="toolbar" aria-label="Formatting" wrap="wrap">
          {marks.map((mark) => (
            <Tool
              key={mark.name}
              label={mark.shortcut ? `${mark.label} (${mark.shortcut})` : mark.label}
              active={state[mark.name]}
              onClick={() => editor.chain().focus().toggleMark(mark.name).run()}
            >
              {mark.face}
            </Tool>
          ))}
          <Popover
            opened={linkOpen}
            onChange={setLinkOpen}
            trapFocus
            position="bottom"
            withArrow
            shadow="md"
          >
            <Popover.Target>
              <Tool
                label="Link"
                active={state.link}
                onClick={() => {
                  setHref(String(editor.getAttributes('link').href ?? ''));
                  setLinkOpen((open) => !open);
                }}
              >
                <LinkIcon />
              </Tool>
            </Popover.Target>
            <Popover.Dropdown>
              <Stack gap="xs">
                <TextInput
                  label="Link address"
                  description="https://, http:// or tg:// — empty removes the link"
                  placeholder="https://t.me/your_bot?start=offer"
                  value={href}
                  onChange={(event) => setHref(event.currentTarget.value)}
                  onKeyDown={(event) => {
                    if (event.key === 'Enter' && linkValid) {
                      event.preventDefault();
                      applyLink();
                    }
                  }}
                  error={linkValid ? undefined : 'Telegram opens https://, http:// and tg:// links'}
                />
                <Button size="xs" onClick={applyLink} disabled={!linkValid}>
                  Apply link
                </Button>
              </Stack>
            </Popover.Dropdown>
          </Popover>
          <Tool
            label="Quote"
            active={state.blockquote}
            onClick={() => editor.chain().focus().toggleBlockquote().run()}
          >
            ❝
          </Tool>
          <Tool
            label="Code block"
            active={state.codeBlock}
            onClick={() => editor.chain().focus().toggleCodeBlock().run()}
          >
            {'{ }'}
          </Tool>
        </Group>
        <EditorContent editor={editor} />
      </Paper>
    </Stack>
  );
}
