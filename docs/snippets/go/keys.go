// Create an inference key with the management API: a $5 monthly limit, sim models only.
// SWITCHYARD_ADMIN_KEY: a management key. The secret ("key") is shown only once.
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
	body, _ := json.Marshal(map[string]any{"name": "my-app", "limit": 5, "limit_reset": "monthly",
		"allowed_models": []string{"sim/*"}})
	req, _ := http.NewRequest("POST", baseURL+"/api/v1/keys", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+os.Getenv("SWITCHYARD_ADMIN_KEY"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()

	var created struct {
		Data  struct{ Hash string }     `json:"data"`
		Key   string                    `json:"key"`
		Error *struct{ Message string } `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil {
		log.Fatal(err)
	}
	if created.Error != nil {
		log.Fatalf("%d: %s", resp.StatusCode, created.Error.Message)
	}
	fmt.Println(created.Data.Hash, created.Key)
}
