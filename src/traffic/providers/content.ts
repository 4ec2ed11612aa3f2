/**
 * Prompt content of any provider's message shape: strings, and parts/blocks of the OpenAI,
 * Anthropic, Bedrock Converse, Gemini, Responses and Cohere flavours. Text is collected; media
 * becomes a fixed token allowance; tool calls and results count as their JSON.
 */
import type { PromptCollector } from './common.js';
import { asArray, asObject, path, str } from './json.js';

/** Real message content nests a few levels (tool results holding blocks); deeper is ignored. */
const MAX_DEPTH = 6;

const MEDIA_TYPES = new Set([
  'image',
  'image_url',
  'input_image',
  'audio',
  'input_audio',
  'file',
  'input_file',
  'document',
  'video',
]);

const MEDIA_KEYS = ['image', 'image_url', 'input_audio', 'inlineData', 'inline_data', 'fileData', 'file_data', 'document', 'video', 'audio'];

export function readContent(content: unknown, prompt: PromptCollector, depth = 0): void {
  if (depth > MAX_DEPTH) return;
  if (typeof content === 'string') {
    prompt.text(content);
    return;
  }
  if (Array.isArray(content)) {
    for (const part of content) readPart(part, prompt, depth + 1);
    return;
  }
  readPart(content, prompt, depth + 1);
}

function readPart(value: unknown, prompt: PromptCollector, depth: number): void {
  if (typeof value === 'string') {
    prompt.text(value);
    return;
  }
  const part = asObject(value);
  if (part === undefined) return;
  const text = str(part.text);
  if (text !== undefined) {
    prompt.text(text);
    return;
  }
  const type = str(part.type);
  switch (type) {
    case 'tool_use':
      prompt.text(str(part.name));
      prompt.json(part.input);
      return;
    case 'tool_result':
      readContent(part.content, prompt, depth);
      return;
    case 'thinking':
      prompt.text(str(part.thinking));
      return;
    case 'refusal':
      prompt.text(str(part.refusal));
      return;
  }
  if ((type !== undefined && MEDIA_TYPES.has(type)) || MEDIA_KEYS.some((k) => asObject(part[k]) !== undefined)) {
    prompt.media();
    return;
  }
  readStructured(part, prompt, depth);
}

/** Tool and reasoning parts of Bedrock Converse and Gemini (keyed by part kind, no `type`). */
function readStructured(part: Record<string, unknown>, prompt: PromptCollector, depth: number): void {
  const toolUse = asObject(part.toolUse);
  if (toolUse !== undefined) {
    prompt.text(str(toolUse.name));
    prompt.json(toolUse.input);
    return;
  }
  const toolResult = asObject(part.toolResult);
  if (toolResult !== undefined) {
    readContent(toolResult.content, prompt, depth);
    return;
  }
  const functionCall = asObject(part.functionCall ?? part.function_call);
  if (functionCall !== undefined) {
    prompt.text(str(functionCall.name));
    prompt.json(functionCall.args);
    return;
  }
  const functionResponse = asObject(part.functionResponse ?? part.function_response);
  if (functionResponse !== undefined) {
    prompt.json(functionResponse.response);
    return;
  }
  if (part.json !== undefined) {
    prompt.json(part.json);
    return;
  }
  prompt.text(str(path(part, 'reasoningContent', 'reasoningText', 'text')));
  prompt.text(str(path(part, 'guardContent', 'text', 'text')));
  prompt.text(str(path(part, 'executableCode', 'code')));
  prompt.text(str(path(part, 'codeExecutionResult', 'output')));
}

/** `tool_calls` of OpenAI-shaped assistant messages in the history (names and argument JSON). */
export function readToolCalls(toolCalls: unknown, prompt: PromptCollector): void {
  for (const call of asArray(toolCalls)) {
    const fn = asObject(path(call, 'function'));
    if (fn === undefined) continue;
    prompt.text(str(fn.name));
    prompt.json(fn.arguments);
  }
}
