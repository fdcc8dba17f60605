// Key Vault (RBAC authorization) holding the upstream model server's API key and the dashboard session secret. The
// function app reads them through versionless Key Vault references, so a new secret version is picked up without
// redeploying.
@description('Key Vault name (3-24 characters).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags applied to the vault.')
param tags object = {}

@description('Name of the secret that holds the upstream API key.')
param upstreamApiKeySecretName string

@description('The upstream API key. Empty: no secret is written (an upstream without authentication).')
@secure()
param upstreamApiKey string = ''

@description('Name of the secret that signs dashboard session cookies.')
param dashboardSessionSecretName string

@description('The dashboard session secret. Empty: no secret is written (and the app gets no setting for it).')
@secure()
param dashboardSessionSecret string = ''

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource upstreamApiKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(upstreamApiKey)) {
  parent: vault
  name: upstreamApiKeySecretName
  properties: {
    value: upstreamApiKey
    contentType: 'text/plain'
  }
}

resource dashboardSessionSecretResource 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(dashboardSessionSecret)) {
  parent: vault
  name: dashboardSessionSecretName
  properties: {
    value: dashboardSessionSecret
    contentType: 'text/plain'
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri

@description('Versionless URI of the upstream key secret, for a Key Vault reference (refreshed within 24 hours of a new version).')
output upstreamApiKeySecretUri string = '${vault.properties.vaultUri}secrets/${upstreamApiKeySecretName}/'

@description('Versionless URI of the dashboard session secret, for a Key Vault reference.')
output dashboardSessionSecretUri string = '${vault.properties.vaultUri}secrets/${dashboardSessionSecretName}/'
