"""The highway-env simulator source: scenarios, the expert driver, rendering and scene facts."""
