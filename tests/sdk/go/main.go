// Command genai-client is google.golang.org/genai pointed at pyexecd: it runs one
// scenario and prints, as one JSON line, what the SDK's typed accessors returned. The
// scenario comes as JSON on stdin (shapes: tests/sdk/sdk_common.py), e.g.
//
//	{"scenario": "generate", "baseUrl": "http://127.0.0.1:PORT", "model": "echo",
//	 "prompt": "...", "tools": true}
//
// Only the base URL and a dummy key differ from a client of the real API.
//
// scripts/setup-sdk.sh builds it into /opt/pyexecd/sdk-go/genai-client;
// tests/sdk/test_go_sdk.py runs it.
package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/genai"
)

type retrySpec struct {
	Attempts     int32   `json:"attempts"`
	InitialDelay float64 `json:"initialDelay"`
	MaxDelay     float64 `json:"maxDelay"`
	Jitter       float64 `json:"jitter"`
}

type fileSpec struct {
	MimeType string `json:"mimeType"`
	Data     string `json:"data"` // standard base64
}

type spec struct {
	Scenario string     `json:"scenario"`
	BaseURL  string     `json:"baseUrl"`
	Model    string     `json:"model"`
	Prompt   string     `json:"prompt"`
	Prompts  []string   `json:"prompts"`
	Tools    bool       `json:"tools"`
	Retry    *retrySpec `json:"retry"`
	File     *fileSpec  `json:"file"`
	PageSize int32      `json:"pageSize"`
}

type obj = map[string]any

func newClient(ctx context.Context, s *spec) (*genai.Client, error) {
	opts := genai.HTTPOptions{BaseURL: s.BaseURL}
	if s.Retry != nil {
		opts.RetryOptions = &genai.HTTPRetryOptions{
			Attempts:     genai.Ptr(s.Retry.Attempts),
			InitialDelay: genai.Ptr(s.Retry.InitialDelay),
			MaxDelay:     genai.Ptr(s.Retry.MaxDelay),
			Jitter:       genai.Ptr(s.Retry.Jitter),
		}
	}
	return genai.NewClient(ctx, &genai.ClientConfig{
		APIKey:      "local",
		Backend:     genai.BackendGeminiAPI,
		HTTPOptions: opts,
	})
}

func config(s *spec) *genai.GenerateContentConfig {
	if !s.Tools {
		return nil
	}
	return &genai.GenerateContentConfig{
		Tools: []*genai.Tool{{CodeExecution: &genai.ToolCodeExecution{}}},
	}
}

// nz gives "" as nil: Go's structs cannot tell an absent string from an empty one.
func nz(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func partOf(p *genai.Part) obj {
	switch {
	case p.ExecutableCode != nil:
		return obj{"kind": "code", "language": string(p.ExecutableCode.Language),
			"code": p.ExecutableCode.Code, "id": nz(p.ExecutableCode.ID)}
	case p.CodeExecutionResult != nil:
		return obj{"kind": "result", "outcome": string(p.CodeExecutionResult.Outcome),
			"output": nz(p.CodeExecutionResult.Output), "id": nz(p.CodeExecutionResult.ID)}
	case p.InlineData != nil:
		// The Go SDK decodes inline data into bytes.
		head := p.InlineData.Data
		if len(head) > 8 {
			head = head[:8]
		}
		return obj{"kind": "inlineData", "mimeType": p.InlineData.MIMEType,
			"size": len(p.InlineData.Data), "head": hex.EncodeToString(head)}
	case p.Text != "":
		return obj{"kind": "text", "text": p.Text}
	}
	raw, _ := json.Marshal(p)
	var keys obj
	_ = json.Unmarshal(raw, &keys)
	names := []string{}
	for k := range keys {
		names = append(names, k)
	}
	return obj{"kind": "other", "keys": names}
}

func summary(r *genai.GenerateContentResponse) obj {
	out := obj{
		"text":                nz(r.Text()),
		"executableCode":      nz(r.ExecutableCode()),
		"codeExecutionResult": nz(r.CodeExecutionResult()),
		"finishReason":        nil,
		"role":                nil,
		"modelVersion":        nz(r.ModelVersion),
		"responseId":          nz(r.ResponseID),
		"parts":               []obj{},
	}
	usage := obj{"promptTokenCount": nil, "candidatesTokenCount": nil, "totalTokenCount": nil,
		"toolUsePromptTokenCount": nil}
	if u := r.UsageMetadata; u != nil {
		usage = obj{"promptTokenCount": u.PromptTokenCount,
			"candidatesTokenCount":    u.CandidatesTokenCount,
			"totalTokenCount":         u.TotalTokenCount,
			"toolUsePromptTokenCount": u.ToolUsePromptTokenCount}
	}
	out["usage"] = usage
	if len(r.Candidates) > 0 && r.Candidates[0] != nil {
		c := r.Candidates[0]
		out["finishReason"] = nz(string(c.FinishReason))
		if c.Content != nil {
			out["role"] = nz(c.Content.Role)
			parts := []obj{}
			for _, p := range c.Content.Parts {
				parts = append(parts, partOf(p))
			}
			out["parts"] = parts
		}
	}
	return out
}

func errorOf(err error) obj {
	var apiErr genai.APIError
	if errors.As(err, &apiErr) {
		var details any
		if apiErr.Details != nil {
			details = apiErr.Details
		}
		return obj{"type": "APIError", "code": apiErr.Code, "status": nz(apiErr.Status),
			"message": apiErr.Message, "details": details}
	}
	return obj{"type": fmt.Sprintf("%T", err), "code": nil, "status": nil,
		"message": err.Error(), "details": nil}
}

func outcome(r *genai.GenerateContentResponse, err error) obj {
	if err != nil {
		return obj{"error": errorOf(err)}
	}
	return obj{"response": summary(r)}
}

func chunksOf(seq func(func(*genai.GenerateContentResponse, error) bool)) obj {
	chunks := []obj{}
	for r, err := range seq {
		if err != nil {
			return obj{"chunks": chunks, "error": errorOf(err)}
		}
		chunks = append(chunks, summary(r))
	}
	return obj{"chunks": chunks}
}

func historyOf(chat *genai.Chat) []obj {
	out := []obj{}
	for _, c := range chat.History(false) {
		kinds := []string{}
		for _, p := range c.Parts {
			kinds = append(kinds, partOf(p)["kind"].(string))
		}
		out = append(out, obj{"role": nz(c.Role), "kinds": kinds})
	}
	return out
}

func run(ctx context.Context, s *spec) (obj, error) {
	client, err := newClient(ctx, s)
	if err != nil {
		return nil, err
	}
	models := client.Models
	switch s.Scenario {
	case "generate", "retry": // retry: s.Retry set the client's RetryOptions
		return outcome(models.GenerateContent(ctx, s.Model, genai.Text(s.Prompt), config(s))), nil

	case "stream":
		return chunksOf(models.GenerateContentStream(ctx, s.Model, genai.Text(s.Prompt), config(s))), nil

	case "chat", "chatStream":
		chat, err := client.Chats.Create(ctx, s.Model, config(s), nil)
		if err != nil {
			return nil, err
		}
		turns := []obj{}
		for _, message := range s.Prompts {
			if s.Scenario == "chat" {
				turns = append(turns, outcome(chat.SendMessage(ctx, genai.Part{Text: message})))
			} else {
				turns = append(turns, chunksOf(chat.SendMessageStream(ctx, genai.Part{Text: message})))
			}
		}
		return obj{"turns": turns, "history": historyOf(chat)}, nil

	case "inputFile":
		data, err := base64.StdEncoding.DecodeString(s.File.Data)
		if err != nil {
			return nil, err
		}
		contents := []*genai.Content{genai.NewContentFromParts([]*genai.Part{
			genai.NewPartFromBytes(data, s.File.MimeType),
			genai.NewPartFromText(s.Prompt),
		}, genai.RoleUser)}
		return outcome(models.GenerateContent(ctx, s.Model, contents, config(s))), nil

	case "errorThenOk":
		first := outcome(models.GenerateContent(ctx, s.Model, genai.Text(s.Prompt), config(s)))
		second := outcome(models.GenerateContent(ctx, s.Model, genai.Text(s.Prompt), config(s)))
		return obj{"first": first, "second": second}, nil

	case "models":
		names := []string{}
		page, err := models.List(ctx, &genai.ListModelsConfig{PageSize: s.PageSize})
		pages := 1
		for ; err == nil; page, err = page.Next(ctx) {
			for _, m := range page.Items {
				names = append(names, m.Name)
			}
			if page.NextPageToken == "" {
				break
			}
			if pages++; pages > 50 {
				return nil, errors.New("models.list: more than 50 pages")
			}
		}
		if err != nil && err != genai.ErrPageDone {
			return nil, err
		}
		got, err := models.Get(ctx, s.Model, nil)
		if err != nil {
			return nil, err
		}
		tokens, err := models.CountTokens(ctx, s.Model, genai.Text(s.Prompt), nil)
		if err != nil {
			return nil, err
		}
		return obj{"names": names, "pages": pages, "get": got.Name, "totalTokens": tokens.TotalTokens}, nil

	case "seed":
		return seed(ctx, s.BaseURL)

	case "seedChat":
		return seedChat(ctx, s.BaseURL)
	}
	return nil, fmt.Errorf("unknown scenario %q", s.Scenario)
}

// seed is the Gemini documentation's Go code-execution example, with only the base URL
// and key given: what it prints is returned as "printed".
func seed(ctx context.Context, baseURL string) (obj, error) {
	client, err := genai.NewClient(ctx, &genai.ClientConfig{
		APIKey:      "local",
		Backend:     genai.BackendGeminiAPI,
		HTTPOptions: genai.HTTPOptions{BaseURL: baseURL},
	})
	if err != nil {
		return nil, err
	}

	config := &genai.GenerateContentConfig{
		Tools: []*genai.Tool{
			{CodeExecution: &genai.ToolCodeExecution{}},
		},
	}

	result, err := client.Models.GenerateContent(
		ctx,
		"gemini-2.5-flash",
		genai.Text("What is the sum of the first 50 prime numbers? "+
			"Generate and run code for the calculation, and make sure you get all 50."),
		config,
	)
	if err != nil {
		return nil, err
	}

	var printed strings.Builder
	fmt.Fprintln(&printed, result.Text())
	fmt.Fprintln(&printed, result.ExecutableCode())
	fmt.Fprintln(&printed, result.CodeExecutionResult())
	return obj{"printed": strings.Split(printed.String(), "\n"), "response": summary(result)}, nil
}

// seedChat is the documentation's Go chat example, base URL and key given, with two
// follow-up questions.
func seedChat(ctx context.Context, baseURL string) (obj, error) {
	client, err := genai.NewClient(ctx, &genai.ClientConfig{
		APIKey:      "local",
		Backend:     genai.BackendGeminiAPI,
		HTTPOptions: genai.HTTPOptions{BaseURL: baseURL},
	})
	if err != nil {
		return nil, err
	}

	config := &genai.GenerateContentConfig{
		Tools: []*genai.Tool{
			{CodeExecution: &genai.ToolCodeExecution{}},
		},
	}

	chat, err := client.Chats.Create(ctx, "gemini-2.5-flash", config, nil)
	if err != nil {
		return nil, err
	}

	var printed strings.Builder
	turns := []obj{}
	for _, message := range []string{
		"What is the sum of the first 50 prime numbers? " +
			"Generate and run code for the calculation, and make sure you get all 50.",
		"Now the sum of the first 100 primes, and plot them.",
		"What is the difference between the two sums?",
	} {
		result, err := chat.SendMessage(ctx, genai.Part{Text: message})
		if err != nil {
			return nil, err
		}
		fmt.Fprintln(&printed, result.Text())
		fmt.Fprintln(&printed, result.ExecutableCode())
		fmt.Fprintln(&printed, result.CodeExecutionResult())
		turns = append(turns, obj{"response": summary(result)})
	}
	return obj{"printed": strings.Split(printed.String(), "\n"), "turns": turns}, nil
}

func main() {
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var s spec
	if err := json.Unmarshal(input, &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	out, err := run(ctx, &s)
	if err != nil {
		out = obj{"exception": errorOf(err)}
	}
	enc, err := json.Marshal(out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Stdout.Write(append(enc, '\n'))
}
