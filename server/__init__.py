"""The i2edit application: Flask app factory, web page, storage, edit-job worker, command line."""
