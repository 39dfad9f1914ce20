/**
 * A small XML reader, enough for TwiML: elements, attributes in any order and either quote, character and
 * numeric entities, self-closing tags, comments, the XML declaration and CDATA. Not a validating parser: it
 * throws on mismatched tags, which is what a carrier does with broken TwiML.
 */
export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  text: string;
}

const NAMED_ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (whole, entity: string) => {
    if (entity.startsWith("#x")) return String.fromCodePoint(parseInt(entity.slice(2), 16));
    if (entity.startsWith("#")) return String.fromCodePoint(parseInt(entity.slice(1), 10));
    return NAMED_ENTITIES[entity] ?? whole;
  });
}

const TOKEN =
  /<!--[\s\S]*?-->|<\?[\s\S]*?\?>|<!\[CDATA\[([\s\S]*?)\]\]>|<\/\s*([\w:.-]+)\s*>|<([\w:.-]+)((?:\s+[\w:.-]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>|([^<]+)/g;
const ATTRIBUTE = /([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g;

export function parseXml(xml: string): XmlElement {
  const root: XmlElement = { name: "#document", attributes: {}, children: [], text: "" };
  const open: XmlElement[] = [root];
  let consumed = 0;
  for (const match of xml.matchAll(TOKEN)) {
    if (match.index !== consumed) throw new Error(`malformed XML near offset ${consumed}`);
    consumed = match.index + match[0].length;
    const [, cdata, closing, opening, attributeText, selfClosing, text] = match;
    const current = open[open.length - 1]!;
    if (cdata !== undefined) current.text += cdata;
    else if (text !== undefined) current.text += decodeEntities(text);
    else if (closing !== undefined) {
      if (current.name !== closing || open.length === 1) throw new Error(`unexpected </${closing}>`);
      open.pop();
    } else if (opening !== undefined) {
      const element: XmlElement = { name: opening, attributes: {}, children: [], text: "" };
      for (const attribute of (attributeText ?? "").matchAll(ATTRIBUTE)) {
        element.attributes[attribute[1]!] = decodeEntities(attribute[2] ?? attribute[3] ?? "");
      }
      current.children.push(element);
      if (!selfClosing) open.push(element);
    }
  }
  if (consumed !== xml.length) throw new Error(`malformed XML near offset ${consumed}`);
  if (open.length !== 1) throw new Error(`unclosed <${open[open.length - 1]!.name}>`);
  return root;
}

/** What the simulator needs from a TwiML document. */
export interface TwimlDocument {
  /** Top-level verbs in order (Connect, Dial, Play, Hangup, …). */
  verbs: XmlElement[];
  /** The bidirectional stream, when the document is `<Connect><Stream>`. */
  connectStream?: TwimlStream;
}

export interface TwimlStream {
  url: string;
  parameters: Record<string, string>;
  attributes: Record<string, string>;
}

export function parseTwiml(xml: string): TwimlDocument {
  const response = parseXml(xml.trim()).children.find((element) => element.name === "Response");
  if (!response) throw new Error("TwiML has no <Response> root");
  const stream = response.children.find((verb) => verb.name === "Connect")?.children.find((noun) => noun.name === "Stream");
  if (!stream) return { verbs: response.children };
  const url = stream.attributes.url;
  if (!url) throw new Error("<Stream> has no url attribute");
  const parameters: Record<string, string> = {};
  for (const parameter of stream.children.filter((child) => child.name === "Parameter")) {
    const name = parameter.attributes.name;
    if (name !== undefined) parameters[name] = parameter.attributes.value ?? "";
  }
  return { verbs: response.children, connectStream: { url, parameters, attributes: stream.attributes } };
}
