// Tool calling, a round trip: the model calls get_weather, we run it, the model answers with its result.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
)

type message struct {
	Role       string     `json:"role"`
	Content    *string    `json:"content"`
	ToolCalls  []toolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

type toolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

var tools = []any{map[string]any{"type": "function", "function": map[string]any{
	"name": "get_weather", "description": "The current weather in a city",
	"parameters": map[string]any{"type": "object", "required": []string{"city"},
		"properties": map[string]any{"city": map[string]string{"type": "string"}}},
}}}

func chat(messages []message) message {
	baseURL := os.Getenv("SWITCHYARD_BASE_URL")
	if baseURL == "" {
		baseURL = "http://127.0.0.1:8080"
	}
	body, _ := json.Marshal(map[string]any{"model": "sim/fast", "messages": messages, "tools": tools})
	req, _ := http.NewRequest("POST", baseURL+"/api/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+os.Getenv("SWITCHYARD_API_KEY"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct {
		Choices []struct {
			Message message `json:"message"`
		} `json:"choices"`
		Error *struct{ Message string } `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		log.Fatal(err)
	}
	if answer.Error != nil {
		log.Fatalf("%d: %s", resp.StatusCode, answer.Error.Message)
	}
	return answer.Choices[0].Message
}

func main() {
	question := "What is the weather in Paris?"
	messages := []message{{Role: "user", Content: &question}}

	first := chat(messages)
	call := first.ToolCalls[0]
	fmt.Println("tool call:", call.Function.Name, call.Function.Arguments)

	var args struct{ City string }
	json.Unmarshal([]byte(call.Function.Arguments), &args)
	result, _ := json.Marshal(map[string]any{"city": args.City, "temperature_c": 18}) // your function here
	text := string(result)
	messages = append(messages, first, message{Role: "tool", Content: &text, ToolCallID: call.ID})
	final := chat(messages)
	fmt.Println("answer:", *final.Content)
}
