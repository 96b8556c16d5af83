import { DEFAULT_CHAT_TEMPLATE, renderChat } from './chat-template';

describe('renderChat', () => {
  const messages = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Hi' },
  ];

  it('renders the default template with the assistant turn opened', () => {
    expect(renderChat(undefined, messages)).toBe('<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n');
    expect(renderChat(DEFAULT_CHAT_TEMPLATE, messages)).toBe(renderChat(undefined, messages));
  });

  it("renders a model's own Hugging Face-style template (DeepSeek-like)", () => {
    const template =
      "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}User: {{ m.content }}\n\n{% elif m.role == 'assistant' %}Assistant: {{ m.content }}\n\n{% else %}{{ m.content }}\n\n{% endif %}{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}";
    expect(renderChat(template, messages)).toBe('Be brief.\n\nUser: Hi\n\nAssistant:');
  });

  it('throws, naming the problem, for a broken template', () => {
    expect(() => renderChat('{% for m in messages %}', messages)).toThrow();
  });
});
