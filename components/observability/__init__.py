"""What an operator sees: metrics (a StatsD exporter), alert rules and a Grafana dashboard."""
