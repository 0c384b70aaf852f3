import os
from google import genai
from google.genai import types

client = genai.Client(api_key="local", http_options=types.HttpOptions(
    base_url=os.environ.get("PYEXECD_URL", "http://127.0.0.1:8080"),
    retry_options=types.HttpRetryOptions(attempts=3)))   # survives the script's 429
config = types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution())])
chat = client.chats.create(model="gemini-2.5-flash", config=config)
for question in ["What is 2**100?", "What is the sum of its digits?"]:
    reply = chat.send_message(question)
    print(reply.executable_code, reply.code_execution_result, reply.text, sep="\n")
