import MarkdownIt from 'markdown-it';
import { useMemo } from 'react';

/**
 * Model output as Markdown. markdown-it with `html: false` escapes any raw
 * HTML in the text instead of passing it through, and refuses javascript:,
 * vbscript: and data: links (its validateLink), so generated text can never
 * add markup or script to the page. Links to other sites open in a new tab;
 * in-page anchors (the citations of an answer) stay.
 */
const markdown = new MarkdownIt({ html: false, linkify: true, breaks: true });
const defaultLinkOpen = markdown.renderer.rules.link_open ?? ((tokens, idx, options, _env, self) => self.renderToken(tokens, idx, options));
markdown.renderer.rules.link_open = (tokens, idx, options, env, self) => {
  if (/^[a-z][a-z0-9+.-]*:/i.test(String(tokens[idx].attrGet('href') ?? ''))) {
    tokens[idx].attrSet('rel', 'noopener noreferrer nofollow');
    tokens[idx].attrSet('target', '_blank');
  }
  return defaultLinkOpen(tokens, idx, options, env, self);
};

export function Markdown({ text, className }: { text: string; className?: string }) {
  const html = useMemo(() => markdown.render(text), [text]);
  // biome-ignore lint/security/noDangerouslySetInnerHtml: markdown-it escapes every HTML tag in `text` (html: false) and refuses script links: the HTML is its own.
  return <div className={`markdown ${className ?? ''}`} dangerouslySetInnerHTML={{ __html: html }} />;
}
