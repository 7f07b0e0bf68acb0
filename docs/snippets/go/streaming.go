// A streamed chat completion: server-sent events read line by line, text printed as it comes.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
)

func main() {
	baseURL := os.Getenv("SWITCHYARD_BASE_URL")
	if baseURL == "" {
		baseURL = "http://127.0.0.1:8080"
	}
	body, _ := json.Marshal(map[string]any{
		"model":    "sim/fast",
		"stream":   true,
		"messages": []map[string]string{{"role": "user", "content": "Tell me a story"}},
	})
	req, _ := http.NewRequest("POST", baseURL+"/api/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+os.Getenv("SWITCHYARD_API_KEY"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		text, _ := io.ReadAll(resp.Body)
		log.Fatalf("%d: %s", resp.StatusCode, text)
	}

	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		line := lines.Text() // `data: {chunk}`, or a blank line, or a `: comment` keep-alive
		data := strings.TrimPrefix(line, "data: ")
		if data == line || data == "[DONE]" {
			continue
		}
		var chunk struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			log.Fatal(err)
		}
		if len(chunk.Choices) > 0 {
			fmt.Print(chunk.Choices[0].Delta.Content)
		}
		if chunk.Usage != nil {
			fmt.Printf("\n[%d tokens]\n", chunk.Usage.CompletionTokens)
		}
	}
	if err := lines.Err(); err != nil {
		log.Fatal(err)
	}
}
