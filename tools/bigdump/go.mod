module github.com/acme-retail/bigdump

go 1.19
