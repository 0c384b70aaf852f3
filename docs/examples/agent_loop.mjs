import { GoogleGenAI } from "@google/genai";

const ai = new GoogleGenAI({ apiKey: "local", httpOptions: {
  baseUrl: process.env.PYEXECD_URL ?? "http://127.0.0.1:8080",
  retryOptions: { attempts: 3 } } });   // survives the script's 429
const chat = ai.chats.create({ model: "gemini-2.5-flash",
  config: { tools: [{ codeExecution: {} }] } });
for (const question of ["What is 2**100?", "What is the sum of its digits?"]) {
  const reply = await chat.sendMessage({ message: question });
  console.log(reply.executableCode, reply.codeExecutionResult, reply.text);
}
