/**
 * The XML S3 speaks, both ways. Responses are built with `xmlDocument` from
 * plain trees, every text escaped. Request bodies (DeleteObjects,
 * CreateBucketConfiguration, later CompleteMultipartUpload) are small,
 * size-capped documents of elements and text only; `parseXml` reads exactly
 * that and refuses the rest (DOCTYPE, entities beyond the five predefined and
 * numeric references, processing instructions other than the declaration),
 * so no body can expand or reach outside itself. A parser dependency would
 * bring a much larger surface for four element shapes.
 */

/** An element: name, children (elements or text), in document order. */
export type XmlChild = XmlNode | string | number | boolean | undefined | null;
export interface XmlNode {
  name: string;
  children: XmlChild[];
  attrs?: Record<string, string>;
}

export function el(name: string, ...children: Array<XmlChild | XmlChild[]>): XmlNode {
  return { name, children: children.flat() };
}

const S3_NS = 'http://s3.amazonaws.com/doc/2006-03-01/';

export function escapeXml(text: string): string {
  // Characters XML 1.0 cannot carry at all are written as U+FFFD rather than producing a broken document.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: exactly those characters are meant
  const clean = text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '\ufffd');
  return clean.replace(/[&<>"'\r]/g, (c) =>
    c === '&'
      ? '&amp;'
      : c === '<'
        ? '&lt;'
        : c === '>'
          ? '&gt;'
          : c === '"'
            ? '&quot;'
            : c === "'"
              ? '&apos;'
              : '&#13;',
  );
}

function write(node: XmlNode, out: string[]): void {
  out.push('<', node.name);
  for (const [k, v] of Object.entries(node.attrs ?? {})) out.push(' ', k, '="', escapeXml(v), '"');
  out.push('>');
  for (const child of node.children) {
    if (child === undefined || child === null) continue;
    if (typeof child === 'object') write(child, out);
    else out.push(escapeXml(String(child)));
  }
  out.push('</', node.name, '>');
}

/** A whole document; the root gets S3's namespace unless `namespace` is false (error documents have none). */
export function xmlDocument(root: XmlNode, namespace = true): string {
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>\n'];
  write(namespace ? { ...root, attrs: { xmlns: S3_NS, ...root.attrs } } : root, out);
  return out.join('');
}

// ---- parsing ----

export class XmlSyntaxError extends Error {
  override name = 'XmlSyntaxError';
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function unescapeXml(text: string): string {
  return text.replace(/&([^;]{1,10});/g, (_, ref: string) => {
    if (ref in ENTITIES) return ENTITIES[ref]!;
    const code = ref.startsWith('#x')
      ? Number.parseInt(ref.slice(2), 16)
      : ref.startsWith('#')
        ? Number(ref.slice(1))
        : NaN;
    if (!Number.isInteger(code) || code < 1 || code > 0x10ffff) throw new XmlSyntaxError(`unknown entity &${ref};`);
    return String.fromCodePoint(code);
  });
}

const NAME = /^[A-Za-z_][\w.:-]*/;

/**
 * Parses a document into its root element. Attributes are read (and kept)
 * but namespaces are not interpreted: element names lose any prefix, so
 * <s3:Key> and <Key> read alike. Text children are unescaped; whitespace-only
 * text between elements is dropped.
 */
export function parseXml(text: string): XmlNode {
  let i = 0;
  const fail = (what: string): never => {
    throw new XmlSyntaxError(`malformed XML at offset ${i}: ${what}`);
  };
  const skipMisc = () => {
    for (;;) {
      while (i < text.length && /\s/.test(text[i]!)) i++;
      if (text.startsWith('<?xml', i)) {
        const end = text.indexOf('?>', i);
        if (end < 0) fail('unterminated declaration');
        i = end + 2;
      } else if (text.startsWith('<!--', i)) {
        const end = text.indexOf('-->', i);
        if (end < 0) fail('unterminated comment');
        i = end + 3;
      } else if (text.startsWith('<!', i) || text.startsWith('<?', i)) {
        fail('DOCTYPE and processing instructions are not accepted');
      } else return;
    }
  };
  const parseElement = (depth: number): XmlNode => {
    if (depth > 32) fail('nested too deeply');
    if (text[i] !== '<') fail('expected an element');
    i++;
    const name = NAME.exec(text.slice(i, i + 200))?.[0] ?? fail('expected an element name');
    i += name.length;
    const node: XmlNode = { name: name.includes(':') ? name.slice(name.indexOf(':') + 1) : name, children: [] };
    for (;;) {
      while (/\s/.test(text[i] ?? '')) i++;
      if (text.startsWith('/>', i)) {
        i += 2;
        return node;
      }
      if (text[i] === '>') {
        i++;
        break;
      }
      const attr = NAME.exec(text.slice(i, i + 200))?.[0] ?? fail('expected an attribute');
      i += attr.length;
      const m = /^\s*=\s*("([^"<]*)"|'([^'<]*)')/.exec(text.slice(i, i + 4096)) ?? fail('bad attribute value');
      i += m[0].length;
      node.attrs ??= {};
      node.attrs[attr] = unescapeXml(m[2] ?? m[3] ?? '');
    }
    for (;;) {
      const lt = text.indexOf('<', i);
      if (lt < 0) fail(`unterminated element ${name}`);
      if (lt > i) node.children.push(unescapeXml(text.slice(i, lt)));
      i = lt;
      if (text.startsWith('</', i)) {
        i += 2;
        if (!text.startsWith(name, i)) fail(`</${name}> expected`);
        i += name.length;
        while (/\s/.test(text[i] ?? '')) i++;
        if (text[i] !== '>') fail(`</${name}> expected`);
        i++;
        // Whitespace between child elements is formatting; an element of text alone keeps it all.
        if (node.children.some((c) => typeof c === 'object')) {
          node.children = node.children.filter((c) => typeof c === 'object' || (c as string).trim() !== '');
        }
        return node;
      }
      if (text.startsWith('<!--', i)) {
        const end = text.indexOf('-->', i);
        if (end < 0) fail('unterminated comment');
        i = end + 3;
        continue;
      }
      if (text.startsWith('<![CDATA[', i)) {
        const end = text.indexOf(']]>', i);
        if (end < 0) fail('unterminated CDATA');
        node.children.push(text.slice(i + 9, end));
        i = end + 3;
        continue;
      }
      if (text.startsWith('<!', i) || text.startsWith('<?', i)) fail('markup declarations are not accepted');
      node.children.push(parseElement(depth + 1));
    }
  };
  skipMisc();
  const root = parseElement(0);
  skipMisc();
  if (i !== text.length) fail('content after the root element');
  return root;
}

/** The child elements named `name`. */
export function childrenNamed(node: XmlNode, name: string): XmlNode[] {
  return node.children.filter((c): c is XmlNode => typeof c === 'object' && c !== null && c.name === name);
}

/** The text of an element (its text children joined; elements inside are ignored). */
export function textOf(node: XmlNode): string {
  return node.children.filter((c): c is string => typeof c === 'string').join('');
}

/** The text of the one child named `name`, or undefined when absent. */
export function childText(node: XmlNode, name: string): string | undefined {
  const [first] = childrenNamed(node, name);
  return first === undefined ? undefined : textOf(first);
}
