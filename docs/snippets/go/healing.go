// JSON with healing: sim/broken-json writes malformed JSON on purpose; the gateway repairs it and checks the
// schema, and says so in `heal_status` ("healed") and `heal` (repairs, schema_valid).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	baseURL := os.Getenv("SWITCHYARD_BASE_URL")
	if baseURL == "" {
		baseURL = "http://127.0.0.1:8080"
	}
	schema := map[string]any{
		"type": "object", "additionalProperties": false, "required": []string{"city", "temperature_c"},
		"properties": map[string]any{"city": map[string]string{"type": "string"},
			"temperature_c": map[string]string{"type": "number"}},
	}
	body, _ := json.Marshal(map[string]any{
		"model":    "sim/broken-json",
		"messages": []map[string]string{{"role": "user", "content": "The weather in Paris, as JSON"}},
		"response_format": map[string]any{"type": "json_schema",
			"json_schema": map[string]any{"name": "weather", "strict": true, "schema": schema}},
	})
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
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
		HealStatus string                    `json:"heal_status"`
		Heal       json.RawMessage           `json:"heal"`
		Error      *struct{ Message string } `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		log.Fatal(err)
	}
	if answer.Error != nil {
		log.Fatalf("%d: %s", resp.StatusCode, answer.Error.Message)
	}
	var weather struct {
		City         string  `json:"city"`
		TemperatureC float64 `json:"temperature_c"`
	}
	if err := json.Unmarshal([]byte(answer.Choices[0].Message.Content), &weather); err != nil { // parses: healed
		log.Fatal(err)
	}
	fmt.Println(answer.HealStatus, string(answer.Heal), weather.City, weather.TemperatureC)
}
