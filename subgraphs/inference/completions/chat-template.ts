/**
 * Renders chat messages into the prompt a model expects, with the model's own
 * chat template: the `chat_template` parameter of its config.pbtxt, a
 * Hugging Face-style Jinja template (the same text a model's
 * tokenizer_config.json carries), rendered with @huggingface/jinja. A model
 * that declares none gets DEFAULT_CHAT_TEMPLATE.
 */
import { Template } from '@huggingface/jinja';

export interface ChatMessage {
  role: string;
  content: string;
}

/** `<|role|>` lines, then the assistant's turn: a neutral format for models trained without one. */
export const DEFAULT_CHAT_TEMPLATE = '{% for message in messages %}<|{{ message.role }}|>\n{{ message.content }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}';

const compiled = new Map<string, Template>();

/** Throws an Error naming the problem when the template itself is broken. */
export function renderChat(template: string | undefined, messages: readonly ChatMessage[]): string {
  const source = template ?? DEFAULT_CHAT_TEMPLATE;
  let parsed = compiled.get(source);
  if (!parsed) {
    parsed = new Template(source);
    compiled.set(source, parsed);
  }
  return parsed.render({ messages, add_generation_prompt: true, bos_token: '', eos_token: '' });
}
