// Fallbacks: sim/down fails every call, so the next model in `models` answers; a routing policy
// (switchyard/fallback-demo: sim/down, then sim/fast) does the same by name.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
)

func servedBy(request map[string]any) string {
	baseURL := os.Getenv("SWITCHYARD_BASE_URL")
	if baseURL == "" {
		baseURL = "http://127.0.0.1:8080"
	}
	request["messages"] = []map[string]string{{"role": "user", "content": "Say hello"}}
	body, _ := json.Marshal(request)
	req, _ := http.NewRequest("POST", baseURL+"/api/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+os.Getenv("SWITCHYARD_API_KEY"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct {
		Model string                    `json:"model"`
		Error *struct{ Message string } `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		log.Fatal(err)
	}
	if answer.Error != nil {
		log.Fatalf("%d: %s", resp.StatusCode, answer.Error.Message)
	}
	return answer.Model
}

func main() {
	fmt.Println("models: served by", servedBy(map[string]any{"model": "sim/down",
		"models": []string{"sim/down", "sim/fast"}}))
	fmt.Println("route: served by", servedBy(map[string]any{"model": "switchyard/fallback-demo"}))
}
