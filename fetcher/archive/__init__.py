"""Reading model archives safely and finding the model inside."""
