import type { JSONContent } from '@tiptap/core';

/**
 * A broadcast's text as Telegram takes it: plain text plus MessageEntity ranges (never a
 * parse_mode, so nothing the operator types is read as markup). The composer's editor document
 * becomes one of these (`messageOf`), the preview renders one (`entityTree`), and the API is sent
 * the very same object — so what the preview shows is what users get.
 *
 * Offsets and lengths are in UTF-16 code units, as Telegram counts them and as JavaScript strings
 * are indexed.
 */

/** The MessageEntity types the composer writes (core.telegram.org/bots/api#messageentity). */
export const composedTypes = [
  'bold',
  'italic',
  'underline',
  'strikethrough',
  'spoiler',
  'code',
  'pre',
  'text_link',
  'blockquote',
] as const;
export type ComposedType = (typeof composedTypes)[number];

// A type, not an interface: the API client's entity has an index signature it must fit.
export type MessageEntity = {
  /** One of composedTypes; a broadcast made through the API may carry others (url, mention…). */
  type: string;
  offset: number;
  length: number;
  /** text_link: where it goes. */
  url?: string;
  /** pre: the code's language. */
  language?: string;
};

export interface FormattedText {
  text: string;
  entities: MessageEntity[];
}

/** The editor's marks and the entity each one is. */
const markTypes: Record<string, ComposedType> = {
  bold: 'bold',
  italic: 'italic',
  underline: 'underline',
  strike: 'strikethrough',
  spoiler: 'spoiler',
  code: 'code',
  link: 'text_link',
};

/**
 * Which of two entities starting at the same place is the outer one when they are as long: blocks
 * outside, then links, then styles, code innermost. Telegram's rule is only that entities sharing
 * characters nest; this order makes the nesting (and the preview's elements) predictable.
 */
const depth: Record<string, number> = {
  blockquote: 0,
  pre: 1,
  text_link: 2,
  bold: 3,
  italic: 4,
  underline: 5,
  strikethrough: 6,
  spoiler: 7,
  code: 8,
};
const depthOf = (type: string) => depth[type] ?? 9;

const end = (entity: MessageEntity) => entity.offset + entity.length;

/** Two ranges of one kind (a link: to the same address) that touch are one entity. */
function sameKind(a: MessageEntity, b: MessageEntity): boolean {
  return a.type === b.type && a.url === b.url && a.language === b.language;
}

function byPosition(a: MessageEntity, b: MessageEntity): number {
  return a.offset - b.offset || b.length - a.length || depthOf(a.type) - depthOf(b.type);
}

/**
 * Entities as Telegram accepts them: inside the text, none empty, touching ranges of one kind
 * merged, and nested — "if two entities have common characters, then one of them is fully
 * contained inside another" (the Bot API's formatting options). An entity that crosses the end of
 * an earlier one is split there; the characters each type covers stay the same.
 */
export function normalizeEntities(
  text: string,
  entities: readonly MessageEntity[],
): MessageEntity[] {
  const work = entities
    .map((entity) => {
      const offset = Math.max(0, Math.min(entity.offset, text.length));
      return { ...entity, offset, length: Math.min(end(entity), text.length) - offset };
    })
    .filter((entity) => entity.length > 0)
    .sort(byPosition);
  // Touching or overlapping ranges of one kind become one (the editor splits a mark's range at
  // every change of the marks around it).
  const merged: MessageEntity[] = [];
  for (const entity of work) {
    const same = merged.findLast((other) => sameKind(other, entity) && end(other) >= entity.offset);
    if (same) same.length = Math.max(end(same), end(entity)) - same.offset;
    else merged.push({ ...entity });
  }
  merged.sort(byPosition);
  const nested: MessageEntity[] = [];
  while (merged.length > 0) {
    const entity = merged.shift() as MessageEntity;
    // Everything placed so far starts at or before this one: one that ends inside it crosses it.
    let cut = end(entity);
    for (const placed of nested) {
      if (placed.offset <= entity.offset && end(placed) > entity.offset && end(placed) < cut) {
        cut = end(placed);
      }
    }
    if (cut < end(entity)) {
      const rest = { ...entity, offset: cut, length: end(entity) - cut };
      const at = merged.findIndex((other) => byPosition(rest, other) < 0);
      merged.splice(at < 0 ? merged.length : at, 0, rest);
      nested.push({ ...entity, length: cut - entity.offset });
    } else {
      nested.push(entity);
    }
  }
  return nested.sort(byPosition);
}

/**
 * The text Telegram stores: it strips whitespace at both ends of a message, so the composer does
 * it first and the preview shows the same.
 */
function trimmed({ text, entities }: FormattedText): FormattedText {
  const start = text.length - text.trimStart().length;
  const body = text.trim();
  return {
    text: body,
    entities: entities.map((entity) => ({ ...entity, offset: entity.offset - start })),
  };
}

/**
 * The editor's document (paragraphs, quotes and code blocks of text with marks) as Telegram text
 * and entities: blocks one line apart, an empty paragraph an empty line, a line break a newline.
 */
export function messageOf(doc: JSONContent): FormattedText {
  let text = '';
  const raw: MessageEntity[] = [];
  const inline = (node: JSONContent) => {
    if (node.type === 'hardBreak') {
      text += '\n';
      return;
    }
    if (node.type !== 'text' || !node.text) return;
    const offset = text.length;
    text += node.text;
    for (const mark of node.marks ?? []) {
      const type = markTypes[mark.type];
      if (!type) continue;
      const entity: MessageEntity = { type, offset, length: node.text.length };
      if (type === 'text_link') {
        const href = mark.attrs?.href;
        if (typeof href !== 'string' || href === '') continue;
        entity.url = href;
      }
      raw.push(entity);
    }
  };
  const blocks = (nodes: readonly JSONContent[], inQuote: boolean) => {
    nodes.forEach((node, index) => {
      if (index > 0) text += '\n';
      const offset = text.length;
      if (node.type === 'blockquote') {
        // Telegram has no quote in a quote: an inner one is part of the outer.
        blocks(node.content ?? [], true);
        if (!inQuote) raw.push({ type: 'blockquote', offset, length: text.length - offset });
      } else if (node.type === 'codeBlock') {
        for (const child of node.content ?? []) if (child.type === 'text') text += child.text ?? '';
        const language = node.attrs?.language;
        raw.push({
          type: 'pre',
          offset,
          length: text.length - offset,
          ...(typeof language === 'string' && language !== '' ? { language } : {}),
        });
      } else {
        for (const child of node.content ?? []) inline(child);
      }
    });
  };
  blocks(doc.content ?? [], false);
  const message = trimmed({ text, entities: raw });
  return { text: message.text, entities: normalizeEntities(message.text, message.entities) };
}

/** A piece of the preview: plain text, or an entity and what it contains. */
export type EntityNode = string | { entity: MessageEntity; children: EntityNode[] };

/**
 * The text and its entities as a tree, outer entities first, for the preview to render element by
 * element. Entities are normalized first, so a broadcast made through the API with crossing
 * ranges shows as Telegram would apply them.
 */
export function entityTree(message: FormattedText): EntityNode[] {
  const entities = normalizeEntities(message.text, message.entities);
  const build = (from: number, to: number, inside: MessageEntity[]): EntityNode[] => {
    const nodes: EntityNode[] = [];
    let at = from;
    let index = 0;
    while (index < inside.length) {
      const entity = inside[index] as MessageEntity;
      if (entity.offset > at) nodes.push(message.text.slice(at, entity.offset));
      // The entities after it that lie inside it are its children.
      let next = index + 1;
      while (next < inside.length && end(inside[next] as MessageEntity) <= end(entity)) next++;
      nodes.push({
        entity,
        children: build(entity.offset, end(entity), inside.slice(index + 1, next)),
      });
      at = end(entity);
      index = next;
    }
    if (at < to) nodes.push(message.text.slice(at, to));
    return nodes;
  };
  return build(0, message.text.length, entities);
}
