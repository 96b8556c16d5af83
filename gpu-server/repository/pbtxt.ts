/**
 * A parser for the protobuf text format, the language of Triton's
 * `config.pbtxt`. Two stages:
 *
 * 1. {@link parseTextFormat} tokenizes and parses the text into a syntax tree
 *    that knows nothing of any schema: fields, nested messages (`{}` or `<>`),
 *    lists (`[ ... ]`), strings (single or double quoted, C escapes, adjacent
 *    literals concatenated), numbers, identifiers (enum names, true/false),
 *    `#` comments, and optional `:` / `,` / `;` where the format allows them.
 * 2. {@link textToObject} walks that tree against a protobuf message type
 *    (protobufjs reflection, loaded with `keepCase`) and produces the object in
 *    the proto's JSON shape: snake_case names, enums as names, 64-bit integers
 *    as numbers, maps as plain objects, repeated fields as arrays. Only fields
 *    present in the text appear.
 *
 * Every error is a {@link PbtxtError} naming the file, line and column.
 */
import * as protobuf from 'protobufjs';

export class PbtxtError extends Error {
  override readonly name = 'PbtxtError';
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    readonly reason: string,
  ) {
    super(`${file}:${line}:${column}: ${reason}`);
  }
}

// ------------------------------------------------------------------ syntax tree

export interface Position {
  line: number;
  column: number;
}

export type TextValue =
  | ({ kind: 'identifier'; text: string } & Position)
  | ({ kind: 'number'; text: string } & Position)
  | ({ kind: 'string'; value: string } & Position)
  | ({ kind: 'message'; fields: TextField[] } & Position)
  | ({ kind: 'list'; items: TextValue[] } & Position);

export interface TextField extends Position {
  name: string;
  value: TextValue;
}

// ------------------------------------------------------------------ tokenizer

type TokenKind = 'identifier' | 'number' | 'string' | 'punct' | 'eof';
interface Token extends Position {
  kind: TokenKind;
  text: string; // For strings: the decoded value.
}

const PUNCT = new Set(['{', '}', '[', ']', '<', '>', ':', ',', ';']);

function tokenize(source: string, file: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const fail = (at: number, reason: string): never => {
    throw new PbtxtError(file, line, at - lineStart + 1, reason);
  };
  while (i < source.length) {
    const ch = source[i];
    if (ch === '\n') {
      i++;
      line++;
      lineStart = i;
      continue;
    }
    if (ch === ' ' || ch === '\t' || ch === '\r' || ch === '\f' || ch === '\v') {
      i++;
      continue;
    }
    if (ch === '#') {
      while (i < source.length && source[i] !== '\n') i++;
      continue;
    }
    const start = i;
    const position = { line, column: i - lineStart + 1 };
    if (PUNCT.has(ch)) {
      tokens.push({ kind: 'punct', text: ch, ...position });
      i++;
      continue;
    }
    if (ch === '"' || ch === "'") {
      const quote = ch;
      let value = '';
      const bytes: number[] = [];
      const flushBytes = () => {
        if (bytes.length) {
          value += Buffer.from(bytes).toString('utf8');
          bytes.length = 0;
        }
      };
      i++;
      for (;;) {
        if (i >= source.length || source[i] === '\n') fail(start, `string starting here is not closed with ${quote} before the end of the line`);
        const c = source[i];
        if (c === quote) {
          i++;
          break;
        }
        if (c !== '\\') {
          flushBytes();
          value += c;
          i++;
          continue;
        }
        const e = source[i + 1];
        i += 2;
        const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', a: '\x07', b: '\b', f: '\f', v: '\v', '\\': '\\', "'": "'", '"': '"', '?': '?' };
        if (e !== undefined && simple[e] !== undefined) {
          flushBytes();
          value += simple[e];
        } else if (e === 'x' || e === 'X') {
          const hex = /^[0-9a-fA-F]{1,2}/.exec(source.slice(i, i + 2));
          if (!hex) fail(i - 2, `escape \\x expects 1 or 2 hex digits`);
          bytes.push(parseInt(hex![0], 16));
          i += hex![0].length;
        } else if (e !== undefined && e >= '0' && e <= '7') {
          const oct = /^[0-7]{1,3}/.exec(source.slice(i - 1, i + 2))![0];
          bytes.push(parseInt(oct, 8) & 0xff);
          i += oct.length - 1;
        } else if (e === 'u' || e === 'U') {
          const digits = e === 'u' ? 4 : 8;
          const hex = source.slice(i, i + digits);
          if (!new RegExp(`^[0-9a-fA-F]{${digits}}$`).test(hex)) fail(i - 2, `escape \\${e} expects ${digits} hex digits, but got '${hex}'`);
          flushBytes();
          value += String.fromCodePoint(parseInt(hex, 16));
          i += digits;
        } else {
          fail(i - 2, `unknown escape sequence '\\${e ?? ''}' in string`);
        }
      }
      flushBytes();
      tokens.push({ kind: 'string', text: value, ...position });
      continue;
    }
    const numberMatch = /^-?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[fF]?)/.exec(source.slice(i));
    if (numberMatch && !(ch === '-' && /^-[a-zA-Z_]/.test(source.slice(i, i + 2)))) {
      const text = numberMatch[0];
      const next = source[i + text.length];
      if (next !== undefined && /[A-Za-z0-9_.]/.test(next)) fail(start, `malformed number '${text}${next}'`);
      tokens.push({ kind: 'number', text, ...position });
      i += text.length;
      continue;
    }
    const identMatch = /^-?[A-Za-z_][A-Za-z0-9_]*/.exec(source.slice(i));
    if (identMatch) {
      tokens.push({ kind: 'identifier', text: identMatch[0], ...position });
      i += identMatch[0].length;
      continue;
    }
    fail(start, `unexpected character '${ch}'`);
  }
  tokens.push({ kind: 'eof', text: '', line, column: i - lineStart + 1 });
  return tokens;
}

// ------------------------------------------------------------------ parser

/** Parses protobuf text format into a schema-free syntax tree (the top-level message's fields). */
export function parseTextFormat(source: string, file = '<text>'): TextField[] {
  const tokens = tokenize(source, file);
  let pos = 0;
  const peek = () => tokens[pos];
  const next = () => tokens[pos++];
  const fail = (token: Token, reason: string): never => {
    throw new PbtxtError(file, token.line, token.column, reason);
  };
  const describe = (t: Token) => (t.kind === 'eof' ? 'end of file' : t.kind === 'string' ? `string ${JSON.stringify(t.text)}` : `'${t.text}'`);
  const isPunct = (t: Token, p: string) => t.kind === 'punct' && t.text === p;

  const parseFields = (close: string | undefined): TextField[] => {
    const fields: TextField[] = [];
    for (;;) {
      const t = peek();
      if (close === undefined ? t.kind === 'eof' : isPunct(t, close)) {
        next();
        return fields;
      }
      if (t.kind === 'eof') fail(t, `expected '${close}' to close the message, but reached the end of file`);
      if (t.kind !== 'identifier' || t.text.startsWith('-')) fail(t, `expected a field name, but got ${describe(t)}`);
      next();
      fields.push({ name: t.text, line: t.line, column: t.column, value: parseFieldValue(t) });
      const sep = peek();
      if (isPunct(sep, ',') || isPunct(sep, ';')) next();
    }
  };

  const parseFieldValue = (nameToken: Token): TextValue => {
    const colon = isPunct(peek(), ':');
    if (colon) next();
    const t = peek();
    if (isPunct(t, '{') || isPunct(t, '<')) return parseMessage();
    // `field [ {...}, {...} ]` may omit the colon (a list of messages), as Triton's configs do.
    if (isPunct(t, '[')) return parseList();
    if (!colon) fail(t, `expected ':' or '{' after field '${nameToken.text}', but got ${describe(t)}`);
    return parseScalar();
  };

  const parseMessage = (): TextValue => {
    const open = next();
    const fields = parseFields(open.text === '{' ? '}' : '>');
    return { kind: 'message', fields, line: open.line, column: open.column };
  };

  const parseList = (): TextValue => {
    const open = next();
    const items: TextValue[] = [];
    if (isPunct(peek(), ']')) {
      next();
      return { kind: 'list', items, line: open.line, column: open.column };
    }
    for (;;) {
      const t = peek();
      items.push(isPunct(t, '{') || isPunct(t, '<') ? parseMessage() : parseScalar());
      const sep = next();
      if (isPunct(sep, ']')) return { kind: 'list', items, line: open.line, column: open.column };
      if (!isPunct(sep, ',')) fail(sep, `expected ',' or ']' in the list opened at ${open.line}:${open.column}, but got ${describe(sep)}`);
    }
  };

  const parseScalar = (): TextValue => {
    const t = next();
    if (t.kind === 'string') {
      let value = t.text;
      while (peek().kind === 'string') value += next().text; // "a" "b" is "ab"
      return { kind: 'string', value, line: t.line, column: t.column };
    }
    if (t.kind === 'number') return { kind: 'number', text: t.text, line: t.line, column: t.column };
    if (t.kind === 'identifier') return { kind: 'identifier', text: t.text, line: t.line, column: t.column };
    return fail(t, `expected a value, but got ${describe(t)}`);
  };

  return parseFields(undefined);
}

// ------------------------------------------------------------------ schema

const INTEGER_RANGES: Record<string, [bigint, bigint]> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};

/**
 * Converts a parsed text message into the JSON-shaped object of `type`.
 * `type` must come from a protobufjs Root loaded with `{ keepCase: true }`
 * and resolved (`root.resolveAll()`).
 */
export function textToObject(fields: TextField[], type: protobuf.Type, file = '<text>'): Record<string, unknown> {
  const fail = (at: Position, reason: string): never => {
    throw new PbtxtError(file, at.line, at.column, reason);
  };
  const describe = (v: TextValue) => (v.kind === 'string' ? `string ${JSON.stringify(v.value)}` : v.kind === 'message' ? 'a message' : v.kind === 'list' ? 'a list' : `'${v.text}'`);

  const convertScalar = (field: protobuf.Field, value: TextValue, where: string): unknown => {
    if (field.resolvedType instanceof protobuf.Type) {
      if (value.kind !== 'message') fail(value, `${where} expects a message { ... }, but got ${describe(value)}`);
      return convertMessage((value as { fields: TextField[] }).fields, field.resolvedType);
    }
    if (value.kind === 'message' || value.kind === 'list') fail(value, `${where} expects a ${field.type} value, but got ${describe(value)}`);
    if (field.resolvedType instanceof protobuf.Enum) {
      const values = field.resolvedType.values;
      if (value.kind === 'identifier' && values[value.text] !== undefined) return value.text;
      if (value.kind === 'number' && /^-?\d+$/.test(value.text)) {
        const name = field.resolvedType.valuesById[Number(value.text)];
        if (name !== undefined) return name;
      }
      return fail(value, `${where} expects one of ${Object.keys(values).join(', ')}, but got ${describe(value)}`);
    }
    const range = INTEGER_RANGES[field.type];
    if (range) {
      if (value.kind !== 'number' || !/^-?(\d+|0[xX][0-9a-fA-F]+)$/.test(value.text)) {
        return fail(value, `${where} expects an integer (${field.type}), but got ${describe(value)}`);
      }
      const negative = value.text.startsWith('-');
      const magnitude = BigInt(negative ? value.text.slice(1) : value.text);
      const n = negative ? -magnitude : magnitude;
      if (n < range[0] || n > range[1]) fail(value, `${where} expects a ${field.type} in [${range[0]}, ${range[1]}], but got ${value.text}`);
      return Number(n);
    }
    switch (field.type) {
      case 'float':
      case 'double': {
        if (value.kind === 'number') return parseFloat(value.text.replace(/[fF]$/, ''));
        if (value.kind === 'identifier') {
          const special: Record<string, number> = { inf: Infinity, infinity: Infinity, '-inf': -Infinity, '-infinity': -Infinity, nan: NaN };
          const v = special[value.text.toLowerCase()];
          if (v !== undefined) return v;
        }
        return fail(value, `${where} expects a number (${field.type}), but got ${describe(value)}`);
      }
      case 'bool': {
        if (value.kind === 'identifier' && ['true', 't', 'True'].includes(value.text)) return true;
        if (value.kind === 'identifier' && ['false', 'f', 'False'].includes(value.text)) return false;
        if (value.kind === 'number' && (value.text === '1' || value.text === '0')) return value.text === '1';
        return fail(value, `${where} expects true or false, but got ${describe(value)}`);
      }
      case 'string':
        if (value.kind !== 'string') fail(value, `${where} expects a quoted string, but got ${describe(value)}`);
        return (value as { value: string }).value;
      case 'bytes':
        if (value.kind !== 'string') fail(value, `${where} expects a quoted string (bytes), but got ${describe(value)}`);
        return Buffer.from((value as { value: string }).value, 'latin1');
      default:
        return fail(value, `${where} has type ${field.type}, which this parser does not support`);
    }
  };

  const convertMessage = (textFields: TextField[], messageType: protobuf.Type): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    const seenAt = new Map<string, Position>();
    const oneofSet = new Map<string, string>();
    for (const tf of textFields) {
      const field = messageType.fields[tf.name];
      const where = `field '${tf.name}' of ${messageType.fullName.replace(/^\./, '')}`;
      if (!field) {
        fail(tf, `unknown field '${tf.name}' in ${messageType.fullName.replace(/^\./, '')}; expected one of: ${Object.keys(messageType.fields).join(', ')}`);
      }
      if (field.partOf) {
        const other = oneofSet.get(field.partOf.name);
        if (other !== undefined && other !== tf.name) fail(tf, `'${tf.name}' and '${other}' are both set, but they belong to the same oneof '${field.partOf.name}'`);
        oneofSet.set(field.partOf.name, tf.name);
      }
      const items = tf.value.kind === 'list' ? tf.value.items : [tf.value];
      if (tf.value.kind === 'list' && !field.repeated && !field.map) fail(tf.value, `${where} is not repeated, so it cannot take a list [ ... ]`);
      if (field.map) {
        const map = (out[tf.name] as Record<string, unknown> | undefined) ?? {};
        for (const item of items) {
          if (item.kind !== 'message') fail(item, `${where} is a map and expects entries { key: ... value: ... }, but got ${describe(item)}`);
          const entry = item as { fields: TextField[] } & Position;
          const keyField = entry.fields.find((f) => f.name === 'key');
          const valueField = entry.fields.find((f) => f.name === 'value');
          const stray = entry.fields.find((f) => f.name !== 'key' && f.name !== 'value');
          if (stray) fail(stray, `a map entry of ${where} takes only 'key' and 'value', but got '${stray.name}'`);
          if (!keyField) fail(entry, `a map entry of ${where} needs a 'key'`);
          const keyType = new protobuf.Field('key', 1, (field as unknown as protobuf.MapField).keyType);
          const key = String(convertScalar(keyType, keyField!.value, `the key of ${where}`));
          map[key] = valueField ? convertScalar(field, valueField.value, `the value of ${where}`) : field.resolvedType instanceof protobuf.Type ? {} : field.defaultValue;
        }
        out[tf.name] = map;
        continue;
      }
      if (field.repeated) {
        const list = (out[tf.name] as unknown[] | undefined) ?? [];
        for (const item of items) list.push(convertScalar(field, item, where));
        out[tf.name] = list;
        continue;
      }
      const previous = seenAt.get(tf.name);
      if (previous) fail(tf, `${where} is given twice (first at ${previous.line}:${previous.column}), but it is not repeated`);
      seenAt.set(tf.name, tf);
      out[tf.name] = convertScalar(field, tf.value, where);
    }
    return out;
  };

  return convertMessage(fields, type);
}

/** Parses text format straight into the JSON-shaped object of `type`. */
export function parseTextProto(source: string, type: protobuf.Type, file = '<text>'): Record<string, unknown> {
  return textToObject(parseTextFormat(source, file), type, file);
}
