package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/imedge/imedge/admin"
)

// TestPrometheusRules: deploy/prometheus's alert rules pass promtool's
// checks and unit tests; every alert has a test where it fires and one
// where it stays silent; and every metric the rules and their tests name
// is one imedge exports, so renaming a metric breaks this test instead of
// silently disarming an alert.
func TestPrometheusRules(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	require.NoError(t, err, "promtool is needed (Debian package prometheus; scripts/test.sh installs it)")
	dir := filepath.Join(repoRoot(t), "deploy", "prometheus")
	const rulesFile, testsFile = "imedge.rules.yml", "imedge.rules.test.yml"

	cmd := exec.Command(promtool, "check", "rules", rulesFile)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check rules:\n%s", out)
	assert.Contains(t, string(out), "SUCCESS")
	cmd = exec.Command(promtool, "test", "rules", testsFile)
	cmd.Dir = dir
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "promtool test rules:\n%s", out)
	assert.Contains(t, string(out), "SUCCESS")

	rulesText, err := os.ReadFile(filepath.Join(dir, rulesFile))
	require.NoError(t, err)
	testsText, err := os.ReadFile(filepath.Join(dir, testsFile))
	require.NoError(t, err)
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert  string            `yaml:"alert"`
				Labels map[string]string `yaml:"labels"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(rulesText, &rules))
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	require.NoError(t, yaml.Unmarshal(testsText, &tests))
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			assert.Contains(t, []string{"warning", "critical"}, r.Labels["severity"], "%s has a severity", r.Alert)
			assert.True(t, fires[r.Alert], "%s has a test where it fires", r.Alert)
			assert.True(t, silent[r.Alert], "%s has a test where it stays silent", r.Alert)
		}
	}
	for name := range fires {
		assert.Contains(t, alerts, name, "the tests name an alert the rules do not have")
	}
	for _, want := range []string{"ImedgeDeadLettersGrowing", "ImedgeOutboxFilling", "ImedgeDeliveryFailing",
		"ImedgeCertificateExpiring", "ImedgeCRLStale", "ImedgeRedisDown", "ImedgeDecisionFallbacks",
		"ImedgeDecisionCircuitOpen", "ImedgeIMEgressRefreshFailing", "ImedgeIMEgressListStale", "ImedgeNotReady"} {
		assert.Contains(t, alerts, want)
	}

	exported := admin.MetricNames()
	used := regexp.MustCompile(`\bimedge_[a-z0-9_]+`).FindAllString(string(rulesText)+string(testsText), -1)
	slices.Sort(used)
	for _, name := range slices.Compact(used) {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && slices.Contains(exported, b) {
				base = b
			}
		}
		assert.Contains(t, exported, base, "the rules name %s, which imedge does not export", name)
	}
}
