# environment.d for the ownCloud stack: the .env of ownCloud's admin manual.
export OWNCLOUD_VERSION=10.15
export OWNCLOUD_DOMAIN=localhost:8080
export OWNCLOUD_TRUSTED_DOMAINS=localhost
export ADMIN_USERNAME=admin
export ADMIN_PASSWORD=admin
export HTTP_PORT=8080
