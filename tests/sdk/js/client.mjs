// @google/genai pointed at pyexecd: runs one scenario and prints, as one JSON line, what
// the SDK's typed accessors returned. The scenario comes as JSON on stdin (shapes:
// tests/sdk/sdk_common.py), e.g.
//   {"scenario": "generate", "baseUrl": "http://127.0.0.1:PORT", "model": "echo",
//    "prompt": "...", "tools": true}
// Only the base URL and a dummy key differ from a client of the real API.
//
// Run by tests/sdk/test_js_sdk.py with the Node 22 of scripts/setup-sdk.sh:
//   /opt/pyexecd/node/bin/node tests/sdk/js/client.mjs < spec.json

import {ApiError, GoogleGenAI} from '@google/genai';

// The SDK warns on stderr about non-text parts when `text` is read; stdout stays JSON.

function client(spec, extra = {}) {
  const httpOptions = {baseUrl: spec.baseUrl};
  if (spec.retry) httpOptions.retryOptions = spec.retry;
  return new GoogleGenAI({apiKey: 'local', httpOptions, ...extra});
}

function config(spec) {
  return spec.tools ? {tools: [{codeExecution: {}}]} : {};
}

function partOf(p) {
  if (p.executableCode) {
    return {kind: 'code', language: p.executableCode.language ?? null,
            code: p.executableCode.code ?? null, id: p.executableCode.id ?? null};
  }
  if (p.codeExecutionResult) {
    return {kind: 'result', outcome: p.codeExecutionResult.outcome ?? null,
            output: p.codeExecutionResult.output ?? null, id: p.codeExecutionResult.id ?? null};
  }
  if (p.inlineData) {
    // The JS SDK keeps inline data as the base64 string it received.
    const bytes = Buffer.from(p.inlineData.data ?? '', 'base64');
    return {kind: 'inlineData', mimeType: p.inlineData.mimeType ?? null, size: bytes.length,
            head: bytes.subarray(0, 8).toString('hex')};
  }
  if (typeof p.text === 'string') return {kind: 'text', text: p.text};
  return {kind: 'other', keys: Object.keys(p)};
}

function summary(r) {
  const cand = r.candidates?.[0];
  const u = r.usageMetadata ?? {};
  return {
    text: r.text ?? null,
    executableCode: r.executableCode ?? null,
    codeExecutionResult: r.codeExecutionResult ?? null,
    finishReason: cand?.finishReason ?? null,
    role: cand?.content?.role ?? null,
    modelVersion: r.modelVersion ?? null,
    responseId: r.responseId ?? null,
    usage: {
      promptTokenCount: u.promptTokenCount ?? null,
      candidatesTokenCount: u.candidatesTokenCount ?? null,
      totalTokenCount: u.totalTokenCount ?? null,
      toolUsePromptTokenCount: u.toolUsePromptTokenCount ?? null,
    },
    parts: (cand?.content?.parts ?? []).map(partOf),
  };
}

function errorOf(e) {
  if (!(e instanceof ApiError)) {
    return {type: e?.constructor?.name ?? typeof e, code: null, status: null,
            message: String(e?.stack ?? e), details: null};
  }
  // ApiError.message is the JSON of the error body (the Content-Type was JSON).
  let body = null;
  try { body = JSON.parse(e.message); } catch { body = null; }
  const err = body?.error ?? {};
  return {type: e.name, code: e.status, status: err.status ?? null,
          message: err.message ?? e.message, details: err.details ?? null};
}

async function outcome(fn) {
  try {
    return {response: summary(await fn())};
  } catch (e) {
    return {error: errorOf(e)};
  }
}

async function chunksOf(gen) {
  const chunks = [];
  try {
    for await (const c of await gen()) chunks.push(summary(c));
  } catch (e) {
    return {chunks, error: errorOf(e)};
  }
  return {chunks};
}

function historyOf(chat) {
  return chat.getHistory().map((c) => ({role: c.role ?? null,
                                        kinds: (c.parts ?? []).map((p) => partOf(p).kind)}));
}

const scenarios = {
  async generate(spec) {
    const ai = client(spec);
    return outcome(() => ai.models.generateContent(
        {model: spec.model, contents: spec.prompt, config: config(spec)}));
  },

  async stream(spec) {
    const ai = client(spec);
    return chunksOf(() => ai.models.generateContentStream(
        {model: spec.model, contents: spec.prompt, config: config(spec)}));
  },

  async chat(spec) {
    const ai = client(spec);
    const chat = ai.chats.create({model: spec.model, config: config(spec)});
    const turns = [];
    for (const message of spec.prompts) {
      turns.push(await outcome(() => chat.sendMessage({message})));
    }
    return {turns, history: historyOf(chat)};
  },

  async chatStream(spec) {
    const ai = client(spec);
    const chat = ai.chats.create({model: spec.model, config: config(spec)});
    const turns = [];
    for (const message of spec.prompts) {
      turns.push(await chunksOf(() => chat.sendMessageStream({message})));
    }
    return {turns, history: historyOf(chat)};
  },

  async inputFile(spec) {
    const ai = client(spec);
    const contents = [{role: 'user', parts: [
      {inlineData: {mimeType: spec.file.mimeType, data: spec.file.data}},
      {text: spec.prompt},
    ]}];
    return outcome(() => ai.models.generateContent(
        {model: spec.model, contents, config: config(spec)}));
  },

  // spec.retry becomes httpOptions.retryOptions (client() above).
  async retry(spec) {
    return scenarios.generate(spec);
  },

  async errorThenOk(spec) {
    const first = await scenarios.generate(spec);
    const second = await scenarios.generate(spec);
    return {first, second};
  },

  async models(spec) {
    const ai = client(spec);
    const names = [];
    const pager = await ai.models.list({config: {pageSize: spec.pageSize}});
    let pages = 1;
    for (;;) {
      for (const m of pager.page) names.push(m.name);
      if (!pager.hasNextPage()) break;
      await pager.nextPage();
      pages++;
      if (pages > 50) throw new Error('models.list: more than 50 pages');
    }
    const got = await ai.models.get({model: spec.model});
    const tokens = await ai.models.countTokens({model: spec.model, contents: spec.prompt});
    return {names, pages, get: got.name ?? null, totalTokens: tokens.totalTokens ?? null};
  },

  async vertex(spec) {
    const ai = client(spec, {vertexai: true});
    const out = await outcome(() => ai.models.generateContent(
        {model: spec.model, contents: spec.prompt, config: config(spec)}));
    const tokens = await ai.models.countTokens({model: spec.model, contents: spec.prompt});
    return {...out, totalTokens: tokens.totalTokens ?? null};
  },
};

async function main() {
  let input = '';
  for await (const chunk of process.stdin) input += chunk;
  const spec = JSON.parse(input);
  const run = scenarios[spec.scenario];
  if (!run) throw new Error(`unknown scenario ${spec.scenario}`);
  let out;
  try {
    out = await run(spec);
  } catch (e) {
    out = {exception: errorOf(e)};
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

await main();
