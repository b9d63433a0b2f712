"""The promoledger console: a Streamlit multipage app over the published warehouse."""
