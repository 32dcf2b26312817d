"""Energy management: who decides the power (setpoint policies; the MQTT bridge comes later)."""
